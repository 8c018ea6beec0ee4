"""flask_jobq: the Flask extension for jobq.

``JobQ(app)`` or ``JobQ()`` then ``init_app(app)`` gives each app a durable
queue whose jobs run in worker threads inside the app's context; see
:mod:`flask_jobq.extension` (settings in :mod:`flask_jobq.config`, per-app state
in :mod:`flask_jobq.state`, when workers run in :mod:`flask_jobq.lifecycle`, which
asks :mod:`flask_jobq.serving` what the process is; the monitor in
:mod:`flask_jobq.views`, its health endpoint in :mod:`flask_jobq.health`).
:mod:`flask_jobq.signals` re-sends the core's job
events with the app as sender. It depends on the ``jobq`` core, never the
reverse; importing it without Flask says to ``pip install "jobq[flask]"``.
"""

try:
    import flask as _flask  # noqa: F401  (only to say what to install when it is missing)
except ModuleNotFoundError as _missing:  # pragma: no cover - tested in a subprocess
    if _missing.name not in ("flask", "werkzeug", "click", "blinker", "itsdangerous"):
        raise
    raise ModuleNotFoundError(
        f"flask_jobq needs Flask, which is not installed (no module named {_missing.name!r}): "
        'pip install "jobq[flask]"',
        name=_missing.name,
    ) from _missing

from . import signals as signals
from .access import is_local_request as is_local_request
from .extension import FlaskTask as FlaskTask
from .extension import JobQ as JobQ
from .state import JobQState as JobQState
from .state import state_for as state_for

__all__ = ["FlaskTask", "JobQ", "JobQState", "is_local_request", "signals", "state_for"]
