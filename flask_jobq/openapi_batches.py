"""The OpenAPI description of the monitor's batch endpoints
(:mod:`flask_jobq.batch_views`): ``GET /batches``, ``GET /batches/{batch_id}`` and
``POST /batches/{batch_id}/cancel``, with the ``Batch`` schema.
:mod:`flask_jobq.openapi` splices them in with :func:`with_batch_paths`.

Rule: plain data; imports only the shared schemas.
"""

from __future__ import annotations

from typing import Any

from .openapi_schemas import NUMBER_OR_NULL, ref


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(ref("Error"), description)


_ERRORS = {
    "403": _error("The monitor's authorisation refused the request."),
    "503": _error("The queue's database failed."),
}
_BATCH_ID = {
    "name": "batch_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}
_COUNT = {"type": "integer", "minimum": 0}
_NAME_OR_NULL = {"type": ["string", "null"]}

BATCH_SCHEMAS: dict[str, Any] = {
    "Batch": {
        "type": "object",
        "description": "A batch: its jobs' counts, and the callbacks it enqueues once "
        "every job has ended (only once sealed).",
        "required": [
            "id",
            "total",
            "pending",
            "processing",
            "completed",
            "failed",
            "cancelled",
            "ended",
            "sealed",
            "cancel_requested",
            "finished",
            "created_at",
            "updated_at",
            "finished_at",
            "callback_job_ids",
            "on_complete",
            "on_success",
            "on_failure",
            "queue",
            "meta",
        ],
        "properties": {
            "id": {"type": "integer"},
            "total": {**_COUNT, "description": "Jobs added to it."},
            "pending": _COUNT,
            "processing": _COUNT,
            "completed": _COUNT,
            "failed": {**_COUNT, "description": "Failed for good (no attempt left)."},
            "cancelled": {**_COUNT, "description": "Cancelled or expired."},
            "ended": {**_COUNT, "description": "completed + failed + cancelled."},
            "sealed": {"type": "boolean", "description": "No more jobs can be added."},
            "cancel_requested": {"type": "boolean"},
            "finished": {"type": "boolean", "description": "The callbacks were enqueued."},
            "created_at": {"type": "number"},
            "updated_at": {"type": "number"},
            "finished_at": NUMBER_OR_NULL,
            "callback_job_ids": {"type": "array", "items": {"type": "integer"}},
            "on_complete": _NAME_OR_NULL,
            "on_success": _NAME_OR_NULL,
            "on_failure": _NAME_OR_NULL,
            "queue": {"type": "string", "description": "The callback jobs' queue."},
            "meta": {"type": "object", "description": "What the batch was given."},
        },
    },
    "BatchList": {
        "type": "object",
        "required": ["batches"],
        "properties": {"batches": {"type": "array", "items": ref("Batch")}},
    },
}

BATCH_PATHS: dict[str, Any] = {
    "/batches": {
        "get": {
            "operationId": "listBatches",
            "summary": "The newest batches with their counts.",
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "description": "Batches to answer (1 to 1000, default 20).",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                },
                {
                    "name": "before",
                    "in": "query",
                    "description": "Only batches below this id (the next page).",
                    "schema": {"type": "integer", "minimum": 1},
                },
            ],
            "responses": {
                "200": _json(ref("BatchList"), "Batches, newest first."),
                "400": _error("A bad or unknown query parameter."),
                **_ERRORS,
            },
        }
    },
    "/batches/{batch_id}": {
        "get": {
            "operationId": "getBatch",
            "summary": "One batch: counts per status, sealed, finished, callback jobs.",
            "parameters": [_BATCH_ID],
            "responses": {
                "200": _json(ref("Batch"), "The batch, counts read now."),
                "404": _error("No batch has this id."),
                **_ERRORS,
            },
        }
    },
    "/batches/{batch_id}/cancel": {
        "post": {
            "operationId": "cancelBatch",
            "summary": "Seal a batch and cancel its jobs: pending ones now, running ones "
            "asked to stop. Its callbacks run once the running ones have ended.",
            "parameters": [
                _BATCH_ID,
                {
                    "name": "X-Jobq-Request",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "enum": ["1"]},
                },
            ],
            "requestBody": {
                "required": False,
                "description": "A JSON object (`{}` will do) or the header "
                "`X-Jobq-Request: 1`; anything else is refused with 415.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "responses": {
                "200": _json(ref("Batch"), "The batch after the request."),
                "400": _error("The JSON body is malformed or not an object."),
                "404": _error("No batch has this id."),
                "413": _error("The body is larger than 64 KiB."),
                "415": _error("Neither a JSON body nor the X-Jobq-Request header was sent."),
                **_ERRORS,
            },
        }
    },
}


def with_batch_paths(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with :data:`BATCH_PATHS` added at the end."""
    return {**paths, **BATCH_PATHS}
