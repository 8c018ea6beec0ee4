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

Healthy means: the queue's database answers, and, where this process should run
workers (``JOBQ_START_WORKERS`` and not testing), its pool is alive; with
``?max_age=seconds``, also that no job of an unpaused queue has been runnable
for longer. Only index seeks are read, never counts.

Rule: imports :mod:`flask_jobq.access` and :mod:`flask_jobq.state`; never the
views, the extension or the command line.
"""

from __future__ import annotations

import math
from typing import Any

from flask import abort, current_app, request
from flask.typing import ResponseReturnValue

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
    """200 if the queue answers and workers run (where expected), else 503; the details
    only for requests the monitor's authorisation allows."""
    max_age = _max_age()
    state = state_for()
    problems: list[str] = []
    oldest: float | None = None
    reachable = True
    try:
        oldest = state.queue.oldest_runnable_age()
    except Exception as exc:  # any failure to answer is what this endpoint reports
        reachable = False
        problems.append(f"the queue's database did not answer: {type(exc).__name__}: {exc}")
    else:
        if max_age is not None and oldest > max_age:
            problems.append(
                f"a job has been runnable for {oldest:.1f} s, more than max_age {max_age:g} s"
            )
    pool = state.pool
    alive = pool is not None and pool.is_alive
    expected = state.start_automatically
    if expected and not alive:
        problems.append("no worker pool is running in this process")
    code = 200 if not problems else 503
    body: dict[str, Any] = {"status": "ok" if not problems else "unavailable"}
    if authorise_request() is None:
        body.update(
            healthy=not problems,
            queue_reachable=reachable,
            workers_expected=expected,
            workers_alive=alive,
            oldest_runnable_age=oldest,
            max_age=max_age,
            problems=problems,
        )
    return body, code


def _max_age() -> float | None:
    text = request.args.get("max_age")
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        abort(400, f"max_age must be a number of seconds, got {text!r}")
    if not (math.isfinite(value) and value >= 0):
        abort(400, f"max_age must be a number of seconds >= 0, got {text!r}")
    return value
