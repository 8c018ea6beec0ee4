"""The OpenAPI entries of the dashboard's HTML pages and form actions (``/ui/...``).

Data only, merged into :mod:`flask_jobq.openapi`'s paths: the pages answer
HTML, the actions are form posts that need the dashboard's CSRF cookie and the
same token in their ``csrf_token`` field, and answer a 303 redirect.
Operations carry the tag ``dashboard``; form posts also ``x-jobq-form: true``.
"""

from __future__ import annotations

from typing import Any

from .openapi_schemas import STATUSES, ref

DASHBOARD_TAG = "dashboard"
"""The tag of every dashboard operation."""

STATIC_FILES = ["jobq/dashboard.css", "jobq/dashboard.js", "jobq/icon.svg"]
"""The assets the dashboard ships, under ``/ui/static/``."""


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


_FORBIDDEN = {
    "403": {
        "description": "The monitor's authorisation refused the request (JSON), or, for a "
        "form post, its CSRF token was missing or did not match the cookie (HTML); "
        "nothing was done.",
        "content": {
            "application/json": {"schema": ref("Error")},
            "text/html": {"schema": {"type": "string"}},
        },
    }
}
_PAGE_ERRORS = {**_FORBIDDEN, "503": _html("The queue's database failed.")}
_NOT_FOUND = {
    "404": {
        "description": "No such job or file (HTML), or no such route (JSON).",
        "content": {
            "application/json": {"schema": ref("Error")},
            "text/html": {"schema": {"type": "string"}},
        },
    }
}
_BAD_QUERY = {"400": _html("A malformed query parameter.")}
_REDIRECT = {
    "303": {
        "description": "Done (or refused with a reason): see the page in `Location`, "
        "which shows the result once.",
        "headers": {"Location": {"schema": {"type": "string"}}},
    }
}


def _page(operation_id: str, summary: str, **extra: Any) -> dict[str, Any]:
    responses = {"200": _html("The page."), **extra.pop("responses", {}), **_PAGE_ERRORS}
    return {
        "get": {
            "operationId": operation_id,
            "tags": [DASHBOARD_TAG],
            "summary": summary,
            **extra,
            "responses": responses,
        }
    }


def _form(operation_id: str, summary: str, fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": ["csrf_token", *fields],
        "properties": {"csrf_token": {"type": "string"}, **fields},
    }
    responses = {
        **_REDIRECT,
        "400": _html("A field is missing or malformed."),
        **extra.pop("responses", {}),
        **_PAGE_ERRORS,
    }
    return {
        "post": {
            "operationId": operation_id,
            "tags": [DASHBOARD_TAG],
            "x-jobq-form": True,
            "summary": summary,
            **extra,
            "requestBody": {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": schema}},
            },
            "responses": responses,
        }
    }


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema}


_BULK_ACTION = {"type": "string", "enum": ["retry", "cancel", "delete"]}
_FILTERS = [
    _query("status", "Only jobs in this status.", {"type": "string", "enum": STATUSES}),
    _query("task", "Only jobs of this task.", {"type": "string"}),
    _query("queue", "Only jobs of this queue.", {"type": "string"}),
    {
        **_query(
            "arg",
            "Only jobs with this argument, `KEY=VALUE` (the value read as JSON, else as "
            "text), e.g. `user_id=42`. Repeatable.",
            {"type": "array", "items": {"type": "string"}},
        ),
        "explode": True,
    },
    _query(
        "created_after",
        "Only jobs created at or after this UTC time, `2026-12-02T14:05`.",
        {"type": "string"},
    ),
    _query(
        "created_before",
        "Only jobs created before this UTC time, `2026-12-02T14:05`.",
        {"type": "string"},
    ),
]
_PAGING = [
    _query("sort", "`newest` (default) or `oldest` first.", {"enum": ["newest", "oldest"]}),
    _query("limit", "Jobs per page.", {"enum": ["20", "50", "100", "200"]}),
    _query("after", "Next page: jobs after this id, in order.", {"type": "integer"}),
    _query("before", "Previous page: jobs before this id.", {"type": "integer"}),
]
_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}
_NAME = {"type": "string", "minLength": 1, "maxLength": 1000}

DASHBOARD_PATHS: dict[str, Any] = {
    "/ui/": _page(
        "dashboardOverview",
        "The dashboard's overview: counts per queue and status, throughput charts. "
        "Browsers get it at the prefix itself too.",
    ),
    "/ui/jobs": _page(
        "dashboardJobs",
        "One page of jobs, filtered, with links to the previous and next pages.",
        parameters=[*_FILTERS, *_PAGING],
        responses=_BAD_QUERY,
    ),
    "/ui/bulk": {
        **_page(
            "dashboardBulkConfirm",
            "How many jobs a bulk action would touch, with the button that runs it.",
            parameters=[
                {**_query("action", "The bulk action.", _BULK_ACTION), "required": True},
                *_FILTERS,
            ],
            responses={"400": _html("A malformed filter, an unknown action, or no filter.")},
        ),
        **_form(
            "dashboardBulkRun",
            "Retry, cancel or delete every job matching the filter fields (those of the "
            "jobs page: status, task, queue, arg, created_after, created_before).",
            {"action": _BULK_ACTION},
        ),
    },
    "/ui/jobs/{job_id}": {
        **_page(
            "dashboardJob",
            "One job: arguments, result, progress, error and traceback, lease, log lines.",
            parameters=[_JOB_ID],
            responses=_NOT_FOUND,
        ),
        **_form(
            "dashboardJobAction",
            "Cancel or retry the job (`action` field).",
            {"action": {"type": "string", "enum": ["cancel", "retry"]}},
            parameters=[_JOB_ID],
            responses=_NOT_FOUND,
        ),
    },
    "/ui/batches": _page(
        "dashboardBatches",
        "Batches, newest first, 50 a page: state, jobs ended, counts and callbacks.",
        parameters=[
            _query(
                "before",
                "Show the batches older than this batch id (the next page).",
                {"type": "integer", "minimum": 1},
            )
        ],
        responses=_BAD_QUERY,
    ),
    "/ui/batches/{batch_id}": {
        **_page(
            "dashboardBatch",
            "One batch: its jobs' counts per status, whether it is sealed or finished, "
            "its callbacks and the jobs they enqueued.",
            parameters=[{**_JOB_ID, "name": "batch_id"}],
            responses=_NOT_FOUND,
        ),
        **_form(
            "dashboardBatchAction",
            "Cancel the batch (`action` field): its pending jobs now, running ones asked to stop.",
            {"action": {"type": "string", "enum": ["cancel"]}},
            parameters=[{**_JOB_ID, "name": "batch_id"}],
            responses=_NOT_FOUND,
        ),
    },
    "/ui/workers": _page(
        "dashboardWorkers", "Every live worker pool, with the jobs it runs and for how long."
    ),
    "/ui/queues": {
        **_page("dashboardQueues", "Each queue's state, with a pause or resume button."),
        **_form(
            "dashboardQueueAction",
            "Pause or resume the queue named in the `queue` field.",
            {"queue": _NAME, "action": {"type": "string", "enum": ["pause", "resume"]}},
        ),
    },
    "/ui/schedules": {
        **_page("dashboardSchedules", "Every stored schedule, with pause, resume and run now."),
        **_form(
            "dashboardScheduleAction",
            "Pause, resume or trigger the schedule named in the `schedule` field.",
            {
                "schedule": _NAME,
                "action": {"type": "string", "enum": ["pause", "resume", "trigger"]},
            },
        ),
    },
    "/ui/static/{filename}": {
        "get": {
            "operationId": "dashboardAsset",
            "tags": [DASHBOARD_TAG],
            "summary": "The dashboard's stylesheet, script and icon, shipped in the package.",
            "parameters": [
                {
                    "name": "filename",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": STATIC_FILES},
                }
            ],
            "responses": {
                "200": {
                    "description": "The file.",
                    "content": {
                        "text/css": {"schema": {"type": "string"}},
                        "text/javascript": {"schema": {"type": "string"}},
                        "image/svg+xml": {"schema": {"type": "string"}},
                    },
                },
                **_NOT_FOUND,
                **_FORBIDDEN,
            },
        }
    },
}
"""The dashboard's operations, by path relative to the monitor's prefix."""
