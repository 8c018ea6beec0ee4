"""The OpenAPI description of the monitor's job filters and bulk actions
(:mod:`flask_jobq.bulk_views`): the filters of ``GET /jobs``, ``GET /jobs/count``
and ``POST /jobs/retry|cancel|delete``. :mod:`flask_jobq.openapi` splices them in
with :func:`with_bulk_paths`.

Rule: plain data; imports only the shared schemas.
"""

from __future__ import annotations

import copy
from typing import Any

from .openapi_schemas import STATUSES, ref


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(ref("Error"), description)


_ERRORS = {
    "403": _error("The monitor's authorisation refused the request."),
    "503": _error("The queue's database failed."),
}
_SECONDS = {"type": "number", "minimum": 0}

FILTER_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "status",
        "in": "query",
        "description": "A status; repeat the parameter for several (any of them).",
        "schema": {"type": "array", "items": {"type": "string", "enum": STATUSES}},
        "style": "form",
        "explode": True,
    },
    {"name": "name", "in": "query", "description": "Task name.", "schema": {"type": "string"}},
    {"name": "queue", "in": "query", "schema": {"type": "string"}},
    {
        "name": "created_after",
        "in": "query",
        "description": "Only jobs created at or after this time (epoch seconds).",
        "schema": {"type": "number"},
    },
    {
        "name": "created_before",
        "in": "query",
        "description": "Only jobs created before this time (epoch seconds).",
        "schema": {"type": "number"},
    },
    {
        "name": "older_than",
        "in": "query",
        "description": "Only jobs unchanged for at least this many seconds.",
        "schema": _SECONDS,
    },
    {
        "name": "arg",
        "in": "query",
        "description": (
            "`key:value`, repeatable: the job's argument `key` equals `value`, read as "
            'JSON (`42`, `true`, `null`, `"42"`) or else as a plain string. With `name` '
            "of a registered task, `key` also matches that parameter's positional "
            "argument. Checked row by row: pair it with a status or task."
        ),
        "schema": {"type": "array", "items": {"type": "string", "pattern": "^[^:]+:"}},
        "style": "form",
        "explode": True,
    },
]
"""The filters of ``GET /jobs`` and ``GET /jobs/count``."""

_SCALAR = {"type": ["string", "number", "boolean", "null"]}
BULK_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "At least one filter must be given; every one given must hold.",
    "properties": {
        "status": {
            "oneOf": [
                {"type": "string", "enum": STATUSES},
                {"type": "array", "items": {"type": "string", "enum": STATUSES}},
            ]
        },
        "name": {"type": "string", "description": "Task name."},
        "queue": {"type": "string"},
        "created_after": {"type": "number", "description": "Epoch seconds."},
        "created_before": {"type": "number", "description": "Epoch seconds."},
        "older_than": {**_SECONDS, "description": "Seconds since the job last changed."},
        "args": {
            "type": "object",
            "description": 'Argument values the jobs must have, e.g. `{"user_id": 42}`.',
            "additionalProperties": _SCALAR,
        },
        "dry_run": {
            "type": "boolean",
            "default": False,
            "description": "Count the jobs the action would touch; change nothing.",
        },
        "expect": {
            "type": "integer",
            "minimum": 0,
            "description": "Refuse with 409 unless exactly this many jobs match now.",
        },
    },
}

BULK_RESULT: dict[str, Any] = {
    "type": "object",
    "required": ["action", "dry_run", "matched", "changed", "skipped"],
    "properties": {
        "action": {"type": "string", "enum": ["retry", "cancel", "delete"]},
        "dry_run": {"type": "boolean"},
        "matched": {
            "type": "integer",
            "minimum": 0,
            "description": "Jobs matching the filter in the statuses the action acts on, "
            "counted before it ran.",
        },
        "changed": {"type": "integer", "minimum": 0, "description": "Jobs acted on."},
        "skipped": {
            "type": "integer",
            "minimum": 0,
            "description": "Matching jobs left alone: retry, a live job holds their "
            "unique key; delete, they are processing.",
        },
    },
}

_SUMMARIES = {
    "retry": "Run again every failed or cancelled job matching the filter.",
    "cancel": "Cancel every pending job matching the filter; ask processing ones to stop.",
    "delete": "Delete every pending, completed, failed or cancelled job matching the filter.",
}


def _bulk_operation(action: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": f"{action}Jobs",
            "summary": _SUMMARIES[action],
            "description": "Runs in transactions of 1,000 jobs. Needs a JSON body (or the "
            "X-Jobq-Request header, though without a body there is no filter).",
            "parameters": [
                {
                    "name": "X-Jobq-Request",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "enum": ["1"]},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": BULK_BODY}},
            },
            "responses": {
                "200": _json(BULK_RESULT, "What was done (or, with dry_run, would be)."),
                "400": _error("No filter, a bad filter value, or a malformed body."),
                "409": _error("`expect` was given and a different number of jobs match."),
                "413": _error("The body is larger than 64 KiB."),
                "415": _error("Neither a JSON body nor the X-Jobq-Request header was sent."),
                **_ERRORS,
            },
        }
    }


BULK_PATHS: dict[str, Any] = {
    "/jobs/count": {
        "get": {
            "operationId": "countJobs",
            "summary": "How many jobs match every filter given.",
            "parameters": FILTER_PARAMETERS,
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["count"],
                        "properties": {"count": {"type": "integer", "minimum": 0}},
                    },
                    "The count.",
                ),
                "400": _error("A malformed or unknown query parameter."),
                **_ERRORS,
            },
        }
    },
    **{f"/jobs/{action}": _bulk_operation(action) for action in _SUMMARIES},
}
"""The paths of :mod:`flask_jobq.bulk_views` beside ``/jobs``."""


def with_bulk_paths(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with the filters added to ``GET /jobs`` (its one ``status`` replaced)
    and :data:`BULK_PATHS` right after it, before ``/jobs/{job_id}``, whose
    template would otherwise also match ``/jobs/count``."""
    merged: dict[str, Any] = {}
    for path, item in paths.items():
        merged[path] = item
        if path == "/jobs":
            listing = copy.deepcopy(item)
            kept = [p for p in listing["get"]["parameters"] if p["name"] not in ("status",)]
            names = {p["name"] for p in kept}
            listing["get"]["parameters"] = [
                *(p for p in FILTER_PARAMETERS if p["name"] not in names),
                *kept,
            ]
            merged[path] = listing
            merged.update(BULK_PATHS)
    return merged
