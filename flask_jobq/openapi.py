"""The OpenAPI 3.1 description of the monitoring blueprint, written by hand.

Served at ``<prefix>/openapi.json`` by :mod:`flask_jobq.views`; the tests
validate every answer of the blueprint against the schemas here, so a change
to a view's JSON that is not made here too fails them.
"""

from __future__ import annotations

import copy
from typing import Any

from .openapi_batches import BATCH_SCHEMAS, with_batch_paths
from .openapi_bulk import with_bulk_paths
from .openapi_dashboard import DASHBOARD_PATHS
from .openapi_schemas import SCHEMAS, STATUSES, ref


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(ref("Error"), description)


_FORBIDDEN = {
    "403": _error(
        "No authorisation callback is configured (and the app is not in debug "
        "mode with a local request), or it refused the request."
    )
}
_COMMON_ERRORS = {**_FORBIDDEN, "503": _error("The queue's database failed.")}
_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}
_QUEUE_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_SCHEDULE_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The schedule's name, percent-encoded (a `/` in it as `%2F`).",
    "schema": {"type": "string", "minLength": 1},
}
_COMMAND_BODY = {
    "required": False,
    "description": (
        "State-changing requests need a JSON object body (`{}` will do) or the header "
        "`X-Jobq-Request: 1`; anything else is refused with 415."
    ),
    "content": {"application/json": {"schema": {"type": "object"}}},
}
_CSRF_HEADER = {
    "name": "X-Jobq-Request",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "enum": ["1"]},
}
_COMMAND_ERRORS = {
    **_COMMON_ERRORS,
    "400": _error(
        "The JSON body is malformed or not an object (or, for a queue, its "
        "name in the path is not valid UTF-8)."
    ),
    "413": _error("The body is larger than 64 KiB."),
    "415": _error("Neither a JSON body nor the X-Jobq-Request header was sent."),
}

_PATHS: dict[str, Any] = {
    "/": {
        "get": {
            "operationId": "index",
            "summary": "The monitor's endpoints: a link to each, and to this description.",
            "description": "Also answered at the prefix without its trailing slash.",
            "responses": {
                "200": {
                    "description": "The links; browsers (Accept preferring text/html) get "
                    "the dashboard's overview page instead.",
                    "content": {
                        "application/json": {"schema": ref("Index")},
                        "text/html": {"schema": {"type": "string"}},
                    },
                },
                **_FORBIDDEN,
            },
        }
    },
    "/stats": {
        "get": {
            "operationId": "stats",
            "summary": "Counts per queue and status, as queue.stats() gives them.",
            "responses": {"200": _json(ref("Stats"), "The counts."), **_COMMON_ERRORS},
        }
    },
    "/jobs": {
        "get": {
            "operationId": "listJobs",
            "summary": "One page of jobs matching every filter given, by id.",
            "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string", "enum": STATUSES}},
                {
                    "name": "name",
                    "in": "query",
                    "description": "Task name.",
                    "schema": {"type": "string"},
                },
                {"name": "queue", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "after",
                    "in": "query",
                    "description": "The `next_after` of the previous page.",
                    "schema": {"type": "integer", "minimum": 0},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                },
                {
                    "name": "order",
                    "in": "query",
                    "description": "`asc`: oldest first; `desc`: newest first (`after` then "
                    "means below).",
                    "schema": {"type": "string", "enum": ["asc", "desc"], "default": "asc"},
                },
            ],
            "responses": {
                "200": _json(ref("JobPage"), "The page."),
                "400": _error("A malformed or unknown query parameter."),
                **_COMMON_ERRORS,
            },
        }
    },
    "/jobs/{job_id}": {
        "get": {
            "operationId": "getJob",
            "summary": "One job.",
            "parameters": [_JOB_ID],
            "responses": {
                "200": _json(ref("Job"), "The job."),
                "404": _error("No job has this id."),
                **_COMMON_ERRORS,
            },
        }
    },
    "/jobs/{job_id}/logs": {
        "get": {
            "operationId": "getJobLogs",
            "summary": "The lines a job's tasks kept with `jobq.current_job().log()`.",
            "parameters": [_JOB_ID],
            "responses": {
                "200": _json(ref("JobLogs"), "The job's kept lines, oldest first."),
                "404": _error("No job has this id."),
                **_COMMON_ERRORS,
            },
        }
    },
    "/jobs/{job_id}/attempts": {
        "get": {
            "operationId": "getJobAttempts",
            "summary": "A job's attempts that did not complete, with their errors, and "
            "its timeline.",
            "parameters": [_JOB_ID],
            "responses": {
                "200": _json(ref("JobAttempts"), "The job's attempts and timeline."),
                "404": _error("No job has this id."),
                **_COMMON_ERRORS,
            },
        }
    },
    "/throughput": {
        "get": {
            "operationId": "getThroughput",
            "summary": "Jobs that ended completed and failed per minute or per hour, "
            "counted as they ended (no scan of the jobs).",
            "parameters": [
                {
                    "name": "last",
                    "in": "query",
                    "description": "Seconds back from now (default 3600, at most 172800).",
                    "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 172800},
                },
                {
                    "name": "bucket",
                    "in": "query",
                    "description": "Seconds per point: 60 (default) or 3600.",
                    "schema": {"type": "integer", "enum": [60, 3600]},
                },
                {
                    "name": "queue",
                    "in": "query",
                    "description": "One queue's jobs only; every queue when left out.",
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                "200": _json(ref("Throughput"), "One point per bucket, oldest first."),
                "400": _error("A bad or unknown query parameter."),
                **_COMMON_ERRORS,
            },
        }
    },
    "/jobs/{job_id}/cancel": {
        "post": {
            "operationId": "cancelJob",
            "summary": "Cancel a pending job, or ask a running one to stop.",
            "parameters": [_JOB_ID, _CSRF_HEADER],
            "requestBody": _COMMAND_BODY,
            "responses": {
                "200": _json(ref("Job"), "The job after the request."),
                "404": _error("No job has this id."),
                "409": _error("The job already finished: there is nothing to cancel."),
                **_COMMAND_ERRORS,
            },
        }
    },
    "/jobs/{job_id}/retry": {
        "post": {
            "operationId": "retryJob",
            "summary": "Run a failed or cancelled job again, with its full attempts.",
            "parameters": [_JOB_ID, _CSRF_HEADER],
            "requestBody": {
                **_COMMAND_BODY,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "delay": {
                                    "type": "number",
                                    "minimum": 0,
                                    "default": 0,
                                    "description": "Seconds before it may run.",
                                }
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json(ref("Job"), "The job, pending again."),
                "404": _error("No job has this id."),
                "409": _error("The job is not failed or cancelled."),
                **_COMMAND_ERRORS,
            },
        }
    },
    "/queues/{name}/pause": {
        "post": {
            "operationId": "pauseQueue",
            "summary": "Stop workers everywhere from starting jobs of this queue.",
            "parameters": [_QUEUE_NAME, _CSRF_HEADER],
            "requestBody": _COMMAND_BODY,
            "responses": {
                "200": _json(ref("QueueState"), "Paused."),
                "409": _error(
                    "As many queues as allowed are paused already (1,000): resume some first."
                ),
                **_COMMAND_ERRORS,
            },
        }
    },
    "/queues/{name}/resume": {
        "post": {
            "operationId": "resumeQueue",
            "summary": "Let workers start jobs of this queue again.",
            "parameters": [_QUEUE_NAME, _CSRF_HEADER],
            "requestBody": _COMMAND_BODY,
            "responses": {"200": _json(ref("QueueState"), "Resumed."), **_COMMAND_ERRORS},
        }
    },
    "/workers": {
        "get": {
            "operationId": "listWorkers",
            "summary": "The worker pools live now, in every process on every host, by host, "
            "pid and name. A pool registers as it starts, is seen at each heartbeat and "
            "leaves on a clean stop; a killed one drops out once its lease period passed.",
            "responses": {"200": _json(ref("WorkerList"), "The live pools."), **_COMMON_ERRORS},
        }
    },
    "/schedules": {
        "get": {
            "operationId": "listSchedules",
            "summary": "Every recurring schedule stored in the database, by name. A "
            "schedule is stored once a process that declares it fires schedules "
            "(a worker pool does on start).",
            "responses": {"200": _json(ref("ScheduleList"), "The schedules."), **_COMMON_ERRORS},
        }
    },
    "/schedules/{name}/pause": {
        "post": {
            "operationId": "pauseSchedule",
            "summary": "Stop firing this schedule in every process until it is resumed.",
            "parameters": [_SCHEDULE_NAME, _CSRF_HEADER],
            "requestBody": _COMMAND_BODY,
            "responses": {
                "200": _json(ref("Schedule"), "The schedule, paused."),
                "404": _error("No schedule has this name."),
                **_COMMAND_ERRORS,
            },
        }
    },
    "/schedules/{name}/resume": {
        "post": {
            "operationId": "resumeSchedule",
            "summary": "Fire this schedule again from its next fire time after now (fires "
            "missed while paused are skipped).",
            "parameters": [_SCHEDULE_NAME, _CSRF_HEADER],
            "requestBody": _COMMAND_BODY,
            "responses": {
                "200": _json(ref("Schedule"), "The schedule, resumed."),
                "404": _error("No schedule has this name."),
                **_COMMAND_ERRORS,
            },
        }
    },
    "/schedules/{name}/trigger": {
        "post": {
            "operationId": "triggerSchedule",
            "summary": "Enqueue this schedule's job now, paused or not; its fire times stay "
            "as they are.",
            "parameters": [_SCHEDULE_NAME, _CSRF_HEADER],
            "requestBody": _COMMAND_BODY,
            "responses": {
                "202": {
                    **_json(ref("Job"), "The new job, pending."),
                    "headers": {
                        "Location": {
                            "description": "The job's URL (`/jobs/{id}`).",
                            "schema": {"type": "string"},
                        }
                    },
                },
                "404": _error("No schedule has this name."),
                **_COMMAND_ERRORS,
            },
        }
    },
    "/running": {
        "get": {
            "operationId": "running",
            "summary": "What each busy worker thread of the answering process is doing.",
            "responses": {"200": _json(ref("Running"), "The busy threads."), **_FORBIDDEN},
        }
    },
    "/health": {
        "get": {
            "operationId": "health",
            "summary": "Whether the queue answers and this process's workers run.",
            "description": (
                "Open to anyone by default (a load balancer needs no credentials): the "
                "answer then holds `status` alone. Requests the monitor's authorisation "
                "(JOBQ_MONITOR_AUTH) allows also get the details. When JOBQ_HEALTH_AUTH is "
                "set, only requests it allows get an answer; the others get 403."
            ),
            "parameters": [
                {
                    "name": "max_age",
                    "in": "query",
                    "description": "Also unhealthy when a job of an unpaused queue has been "
                    "runnable for longer than this many seconds.",
                    "schema": {"type": "number", "minimum": 0},
                }
            ],
            "responses": {
                "200": _json(ref("Health"), "Healthy."),
                "400": _error("A malformed max_age."),
                "403": _error("JOBQ_HEALTH_AUTH is set and refused the request."),
                "503": _json(ref("Health"), "Unhealthy; with the details, `problems` says why."),
            },
        }
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "summary": "The queue's Prometheus metrics, in the text exposition format.",
            "description": (
                "Counters and histograms of every process (prometheus_client's multiprocess "
                "mode) and gauges read from the database now. Authorised by JOBQ_METRICS_AUTH "
                "(a bearer token or a callable), not by JOBQ_MONITOR_AUTH. 404 while "
                "JOBQ_METRICS is false."
            ),
            "security": [{"bearer": []}],
            "responses": {
                "200": {
                    "description": "One scrape.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "403": _error("JOBQ_METRICS_AUTH refused the request."),
                "404": _error("JOBQ_METRICS is false: nothing is counted."),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This description.",
            "responses": {"200": _json({"type": "object"}, "The OpenAPI document."), **_FORBIDDEN},
        }
    },
}

_PATHS = with_bulk_paths(_PATHS)  # filters of /jobs, /jobs/count, bulk actions
_PATHS = with_batch_paths(_PATHS)  # /batches, /batches/{id}, its cancel

_SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "jobq monitor",
        "version": "1",
        "description": (
            "JSON endpoints to look at and steer a jobq queue. Every endpoint but /health "
            "and /metrics is authorised by the app's JOBQ_MONITOR_AUTH callback; /health by "
            "JOBQ_HEALTH_AUTH, open by default; /metrics by JOBQ_METRICS_AUTH. Any path "
            "under the prefix may also answer 403, 404 (unknown route) or 405 (wrong method) "
            "with an Error body."
        ),
    },
    "paths": {**_PATHS, **DASHBOARD_PATHS},
    "components": {
        "schemas": {**SCHEMAS, **BATCH_SCHEMAS},
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}


def openapi_spec(server_url: str = "/jobq") -> dict[str, Any]:
    """The OpenAPI 3.1 document of the monitor mounted at ``server_url`` (a fresh copy)."""
    spec = copy.deepcopy(_SPEC)
    spec["servers"] = [{"url": server_url}]
    return spec
