"""``GET <prefix>/metrics``: the queue's Prometheus metrics, in the text format.

Who may scrape, ``JOBQ_METRICS_AUTH`` (its own setting: a scraper sends a bearer
token, not the cookies a monitor login sets):

- a string: the token; a request must send ``Authorization: Bearer <token>``
  (compared in constant time). Others get 403.
- a callable taking no arguments (reading :data:`flask.request`): exactly True
  allows, as ``JOBQ_MONITOR_AUTH`` does.
- None (the default): closed (403), except when ``app.testing`` is true, and to
  local requests (:func:`flask_jobq.is_local_request`) when ``app.debug`` is true:
  the monitor's default rule.

The answer is also 404 while ``JOBQ_METRICS`` is false (the default): nothing is
counted then. With it true, the extension connects the counters to the app's
queue in each process (:func:`jobq.metrics.connect_metrics`); the scrape sums the
counters of every process in prometheus_client's multiprocess mode and reads the
gauges from the database (:func:`jobq.metrics.render_metrics`).

Rule: imports :mod:`flask_jobq.access`, :mod:`flask_jobq.state` and, inside the
view only, :mod:`jobq.metrics`; never the views, the extension or the command line.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import abort, current_app, request
from flask.typing import ResponseReturnValue

from .access import is_local_request
from .state import state_for

METRICS_ENDPOINT = "metrics"
"""The endpoint name of the metrics view in the monitoring blueprint."""

_BEARER = "bearer "


def authorise_metrics() -> tuple[dict[str, Any], int] | None:
    """None when the current request may scrape, else the 403 answer (the
    ``JOBQ_METRICS_AUTH`` rule of the module docstring, read now)."""
    app = current_app
    check = app.config.get("JOBQ_METRICS_AUTH")
    if check is None:
        if app.testing or (app.debug and is_local_request()):
            return None
        return _forbidden(
            "the metrics endpoint needs JOBQ_METRICS_AUTH: a bearer token (a string) that "
            "scrapers send as 'Authorization: Bearer <token>', or a callable returning True"
        )
    if isinstance(check, str):
        header = request.headers.get("Authorization", "")
        sent = header[len(_BEARER) :] if header[: len(_BEARER)].lower() == _BEARER else ""
        if check and hmac.compare_digest(sent.encode(), check.encode()):
            return None
        return _forbidden("send the JOBQ_METRICS_AUTH token as 'Authorization: Bearer <token>'")
    if not callable(check):
        raise TypeError(f"JOBQ_METRICS_AUTH must be a string, a callable or None, got {check!r}")
    if check() is not True:
        return _forbidden("the metrics endpoint's authorisation callback refused this request")
    return None


def metrics() -> ResponseReturnValue:
    """The Prometheus scrape: 200 text/plain, or 404 while ``JOBQ_METRICS`` is false."""
    if not current_app.config.get("JOBQ_METRICS"):
        abort(404, "metrics are off: set JOBQ_METRICS = True (needs jobq[prometheus])")
    from jobq.metrics import CONTENT_TYPE, render_metrics

    body = render_metrics(state_for().queue)
    return body, 200, {"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}


def _forbidden(message: str) -> tuple[dict[str, Any], int]:
    return {"status": 403, "error": "Forbidden", "message": message}, 403
