"""``GET <prefix>/health``: whether this process's queue and workers are fine, for a load
balancer, an orchestrator's probe or a person.

Who gets what:

- ``JOBQ_HEALTH_AUTH`` None (the default): anyone gets the status alone,
  ``{"status": "ok"}`` with 200 or ``{"status": "unavailable"}`` with 503, so a
  load balancer needs no monitor credentials and learns nothing else; a request
  the monitor's authorisation allows (``JOBQ_MONITOR_AUTH``, see
  :func:`flask_jobq.access.authorise_request`) gets the details too.
- ``JOBQ_HEALTH_AUTH`` a callable (taking no arguments, reading
  :data:`flask.request`): only requests for which it returns exactly True get an
  answer (the status, and the details if the monitor's authorisation allows
  them too); the others get 403. ``lambda: False`` closes the endpoint.

Healthy means what :func:`jobq.worker.health.check_health` says (the same check
as ``jobq worker --health-port``): the queue's database answers, and, where this
process should run workers (``JOBQ_START_WORKERS`` and not testing), its pool is
alive; with ``?max_age=seconds``, also that no job of an unpaused queue has been
runnable for longer. Only index seeks are read, never counts.

Rule: imports :mod:`flask_jobq.access`, :mod:`flask_jobq.state` and the core's
check; never the views, the extension or the command line.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, request
from flask.typing import ResponseReturnValue

from jobq.worker.health import check_health, parse_max_age

from .access import authorise_request
from .state import state_for

HEALTH_ENDPOINT = "health"
"""The endpoint name of the health view in the monitoring blueprint."""


def authorise_health() -> tuple[dict[str, Any], int] | None:
    """None when the current request may call the health endpoint, else the 403 answer
    (the ``JOBQ_HEALTH_AUTH`` rule of the module docstring, read now)."""
    check = current_app.config.get("JOBQ_HEALTH_AUTH")
    if check is None:
        return None
    if not callable(check):
        raise TypeError(f"JOBQ_HEALTH_AUTH must be a callable or None, got {check!r}")
    if check() is not True:
        message = "the health endpoint's authorisation callback refused this request"
        return {"status": 403, "error": "Forbidden", "message": message}, 403
    return None


def health() -> ResponseReturnValue:
    """200 if the queue answers and workers run (where expected), else 503 (the check of
    :func:`jobq.worker.health.check_health`); the details only for requests the
    monitor's authorisation allows."""
    try:
        max_age = parse_max_age(request.args.get("max_age"))
    except ValueError as exc:
        abort(400, str(exc))
    state = state_for()
    report = check_health(
        state.queue, pool=state.pool, workers_expected=state.start_automatically, max_age=max_age
    )
    body: dict[str, Any] = {"status": report.status}
    if authorise_request() is None:
        body.update(report.details())
    return body, report.http_status
