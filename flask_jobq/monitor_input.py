"""What the monitor's views share about requests and answers: the POST rules
(a JSON body or the ``X-Jobq-Request: 1`` header, a size limit), integer query
parameters, error bodies, and a job as JSON. Used by :mod:`flask_jobq.views`
and :mod:`flask_jobq.bulk_views`.

Rule: imports Flask and the core's rendering only, never another view module.
"""

from __future__ import annotations

import json
from typing import Any

from flask import abort, request

from jobq.job import Job
from jobq.render import job_to_dict

DEFAULT_PAGE_SIZE = 50
"""Jobs per page of ``GET /jobs`` when ``limit`` is not given."""

MAX_PAGE_SIZE = 1000
"""Largest ``limit`` accepted by ``GET /jobs``."""

MAX_BODY_SIZE = 64 * 1024
"""Bytes a POST body may hold (the commands take small JSON objects); more is a 413."""

CSRF_HEADER = "X-Jobq-Request"
"""Header (value ``1``) that lets a POST without a JSON body through."""

MAX_JOB_ID = 2**63 - 1
"""Largest job id: SQLite's INTEGER; larger ids cannot exist and would overflow."""


def job_json(job: Job) -> dict[str, Any]:
    """A job as the monitor shows it (:func:`jobq.render.job_to_dict`): no payload, no
    lease; result and progress decoded."""
    return job_to_dict(job, payload=False, lease=False)


def command_body() -> dict[str, Any]:
    """The JSON object a POST carries (``{}`` with only the header); aborts otherwise."""
    if (request.content_length or 0) > MAX_BODY_SIZE:
        abort(413, f"the request body may hold at most {MAX_BODY_SIZE} bytes")
    if not request.is_json:
        if request.headers.get(CSRF_HEADER) == "1":
            return {}
        abort(
            415,
            f"send a JSON body (Content-Type: application/json; {{}} will do) or the "
            f"header '{CSRF_HEADER}: 1'; this keeps cross-site form posts out",
        )
    # Read at most one byte past the limit ourselves: a chunked body has no Content-Length.
    data = request.stream.read(MAX_BODY_SIZE + 1)
    if len(data) > MAX_BODY_SIZE:
        abort(413, f"the request body may hold at most {MAX_BODY_SIZE} bytes")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to decode
        body = None
    if not isinstance(body, dict):
        abort(400, "the request body must be a JSON object, e.g. {}")
    return body


def int_arg(name: str, low: int, high: int) -> int | None:
    """The integer query parameter ``name`` (None when absent), aborting with 400
    unless it is an integer from ``low`` to ``high``."""
    text = request.args.get(name)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        abort(400, f"{name} must be an integer, got {text!r}")
    if not low <= value <= high:
        abort(400, f"{name} must be from {low} to {high}, got {value}")
    return value


def error(status: int, error: str, message: str) -> tuple[dict[str, Any], int]:
    """An error answer: ``({"status", "error", "message"}, status)``."""
    return {"status": status, "error": error, "message": message}, status
