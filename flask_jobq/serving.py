"""Which kind of process is creating the app: the answer :mod:`flask_jobq.lifecycle`
uses to decide when (and whether) workers start.

:func:`process_role` is asked once, in ``init_app``. It looks at what is known for
sure about the process and answers with a :class:`Role`:

- the ``flask`` command line (click's current context holds Flask's
  ``ScriptInfo``): ``flask run`` serves, except in the Werkzeug reloader's
  watching parent (``--debug`` or ``--reload`` without ``WERKZEUG_RUN_MAIN``);
  every other command (``flask shell``, ``flask routes``, ``flask jobq stats``,
  ``flask db upgrade``) does not;
- gunicorn, by the call stack that is loading the app: inside a worker's
  ``load_wsgi`` the process is a worker that will serve (the worker object is
  returned, so the start can wait for its run loop); inside the arbiter only
  (``--preload``) it is the master, which forks the workers and never serves;
- uWSGI (its ``uwsgi`` module exists only inside it): ``worker_id() == 0`` is
  the master, which forks the workers when the app is loaded there;
- anything else is unknown: ``python app.py`` (whose ``app.run()`` comes after),
  a test, another server.

Rule: reads the process (click's context, the call stack, ``sys.modules``,
environment); imports Flask and click, nothing of the package.
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass
from types import FrameType
from typing import Any

import click
from flask.cli import ScriptInfo
from flask.helpers import get_debug_flag
from werkzeug.serving import is_running_from_reloader


class Role(enum.Enum):
    """What this process will do with the app it is creating."""

    FLASK_RUN = "flask run"
    """``flask run`` that serves: without the reloader, or its serving child."""
    GUNICORN_WORKER = "gunicorn worker"
    """A gunicorn worker loading the app (gunicorn without ``--preload``)."""
    PREFORK_GUNICORN = "gunicorn master"
    """The gunicorn arbiter loading the app before forking (``--preload``)."""
    PREFORK_UWSGI = "uwsgi master"
    """The uWSGI master loading the app before forking its workers."""
    NOT_SERVING = "not serving"
    """A ``flask`` command other than ``run``, or the reloader's watching parent."""
    UNKNOWN = "unknown"
    """Nothing known: ``python app.py``, a test, a server not recognised."""


@dataclass(frozen=True)
class ProcessRole:
    """:func:`process_role`'s answer: the role, and what the start needs from it (the
    gunicorn worker object, Flask's ``ScriptInfo``)."""

    role: Role
    gunicorn_worker: Any = None
    script_info: ScriptInfo | None = None


def process_role() -> ProcessRole:
    """What the process calling this (from ``init_app``) is; see the module docstring."""
    context = click.get_current_context(silent=True)
    info = context.find_object(ScriptInfo) if context is not None else None
    if context is not None and info is not None:
        if context.info_name != "run":
            return ProcessRole(Role.NOT_SERVING)
        reload = context.params.get("reload")
        if reload is None:
            reload = get_debug_flag()
        if reload and not is_running_from_reloader():
            return ProcessRole(Role.NOT_SERVING)  # the watching parent
        return ProcessRole(Role.FLASK_RUN, script_info=info)
    if "gunicorn" in sys.modules:
        found = _gunicorn_in_stack(sys._getframe(1))
        if found is not None:
            return found
    uwsgi = sys.modules.get("uwsgi")
    if uwsgi is not None and getattr(uwsgi, "worker_id", lambda: -1)() == 0:
        return ProcessRole(Role.PREFORK_UWSGI)
    return ProcessRole(Role.UNKNOWN)


def _gunicorn_in_stack(frame: FrameType | None) -> ProcessRole | None:
    # A worker's stack holds the arbiter's frames too (fork copies them): look for the
    # worker first, in load_wsgi (the usual place) or spawn_worker (a post_fork hook).
    first = frame
    in_arbiter = False
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("gunicorn.workers.") and frame.f_code.co_name == "load_wsgi":
            return ProcessRole(Role.GUNICORN_WORKER, gunicorn_worker=frame.f_locals.get("self"))
        in_arbiter = in_arbiter or module == "gunicorn.arbiter"
        frame = frame.f_back
    spawned = gunicorn_worker_being_spawned(first)
    if spawned is not None:
        return ProcessRole(Role.GUNICORN_WORKER, gunicorn_worker=spawned)
    return ProcessRole(Role.PREFORK_GUNICORN) if in_arbiter else None


def gunicorn_worker_being_spawned(frame: FrameType | None) -> Any:
    """In a child just forked by gunicorn's arbiter (its ``spawn_worker``), the worker
    object the child is about to run; None in any other fork (a re-exec on SIGUSR2,
    a library's or ``multiprocessing``'s own)."""
    while frame is not None:
        if (
            frame.f_globals.get("__name__") == "gunicorn.arbiter"
            and frame.f_code.co_name == "spawn_worker"
        ):
            return frame.f_locals.get("worker")
        frame = frame.f_back
    return None
