"""The data the monitoring blueprint answers with, as OpenAPI 3.1 schemas: jobs,
stats, pages, running threads, health, schedules, live workers, errors.
:mod:`flask_jobq.openapi` puts them in the served description.

Rule: plain data; imports only :mod:`jobq.job` (for the statuses).
"""

from __future__ import annotations

from typing import Any

from jobq.job import JobStatus

STATUSES = [status.value for status in JobStatus]
"""Every job status, as the JSON shows it."""
NUMBER_OR_NULL: dict[str, Any] = {"type": ["number", "null"]}


def ref(name: str) -> dict[str, Any]:
    """A reference to the schema ``name`` of this description."""
    return {"$ref": f"#/components/schemas/{name}"}


JOB_PROPERTIES: dict[str, Any] = {
    "id": {"type": "integer"},
    "name": {"type": "string", "description": "The registered task name."},
    "queue": {"type": "string"},
    "status": {"type": "string", "enum": STATUSES},
    "priority": {"type": "integer"},
    "attempts": {"type": "integer", "minimum": 0},
    "max_attempts": {"type": "integer", "minimum": 1},
    "run_at": {"type": "number"},
    "created_at": {"type": "number"},
    "started_at": NUMBER_OR_NULL,
    "finished_at": NUMBER_OR_NULL,
    "updated_at": {"type": "number"},
    "error": ref("JobError"),
    "result": {"description": "What the task returned, or null."},
    "progress": {"description": "What the task last reported, or null."},
    "unique_key": {"type": ["string", "null"]},
    "cancel_requested": {"type": "boolean"},
    "expires_at": {**NUMBER_OR_NULL, "description": "Not started by then: cancelled."},
    "limit_key": {"type": ["string", "null"], "description": "Its per-key limits' group."},
    "batch_id": {"type": ["integer", "null"], "description": "The batch it belongs to."},
}
"""The fields of a job as the JSON shows it (every one always present)."""


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["status", "error", "message"],
        "properties": {
            "status": {"type": "integer", "description": "The HTTP status code."},
            "error": {"type": "string", "description": "The status's name."},
            "message": {"type": "string", "description": "What went wrong and how to fix it."},
        },
    },
    "JobError": {
        "type": ["object", "null"],
        "required": ["type", "message", "traceback"],
        "properties": {
            "type": {"type": "string"},
            "message": {"type": "string"},
            "traceback": {"type": ["string", "null"]},
        },
    },
    "Job": {
        "type": "object",
        "description": "Times are epoch seconds. `result` and `progress` are decoded JSON.",
        "required": list(JOB_PROPERTIES),
        "properties": JOB_PROPERTIES,
    },
    "JobLogs": {
        "type": "object",
        "description": "A job keeps its newest 100 lines; `dropped` counts the older ones.",
        "required": ["job_id", "dropped", "lines"],
        "properties": {
            "job_id": {"type": "integer"},
            "dropped": {"type": "integer", "minimum": 0},
            "lines": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["number", "attempt", "logged_at", "message"],
                    "properties": {
                        "number": {
                            "type": "integer",
                            "minimum": 1,
                            "description": "The line's number in its job, dropped lines counted.",
                        },
                        "attempt": {"type": "integer", "minimum": 1},
                        "logged_at": {"type": "number", "description": "Epoch seconds."},
                        "message": {"type": "string", "maxLength": 1000},
                    },
                },
            },
        },
    },
    "StatusCounts": {
        "type": "object",
        "required": STATUSES,
        "properties": {status: {"type": "integer", "minimum": 0} for status in STATUSES},
        "additionalProperties": False,
    },
    "Stats": {
        "type": "object",
        "required": ["queues", "totals", "completed_last_minute", "failed_last_minute", "paused"],
        "properties": {
            "queues": {
                "type": "object",
                "description": "Per queue name; a queue appears once it holds a job.",
                "additionalProperties": {
                    "type": "object",
                    "required": ["counts", "scheduled", "oldest_runnable_age", "paused"],
                    "properties": {
                        "counts": ref("StatusCounts"),
                        "scheduled": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Pending jobs whose run_at is in the future.",
                        },
                        "oldest_runnable_age": {
                            "type": "number",
                            "minimum": 0,
                            "description": "Seconds the oldest due pending job has waited.",
                        },
                        "paused": {"type": "boolean"},
                    },
                },
            },
            "totals": ref("StatusCounts"),
            "completed_last_minute": {"type": "integer", "minimum": 0},
            "failed_last_minute": {"type": "integer", "minimum": 0},
            "paused": {"type": "array", "items": {"type": "string"}},
        },
    },
    "JobPage": {
        "type": "object",
        "required": ["jobs", "next_after"],
        "properties": {
            "jobs": {"type": "array", "items": ref("Job")},
            "next_after": {
                "type": ["integer", "null"],
                "description": "Pass as `after` for the next page; null on the last page.",
            },
        },
    },
    "Running": {
        "type": "object",
        "required": ["pool", "running"],
        "properties": {
            "pool": {
                "type": ["object", "null"],
                "description": "This process's worker pool, or null when none was started.",
                "required": ["name", "alive", "concurrency", "queues"],
                "properties": {
                    "name": {"type": "string"},
                    "alive": {"type": "boolean"},
                    "concurrency": {"type": "integer", "minimum": 1},
                    "queues": {"type": "array", "items": {"type": "string"}},
                },
            },
            "running": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "id",
                        "name",
                        "queue",
                        "attempt",
                        "started_at",
                        "thread",
                        "timed_out",
                        "stuck",
                        "stuck_since",
                    ],
                    "properties": {
                        "id": {"type": "integer"},
                        "name": {"type": "string"},
                        "queue": {"type": "string"},
                        "attempt": {"type": "integer", "minimum": 1},
                        "started_at": NUMBER_OR_NULL,
                        "thread": {"type": ["string", "null"]},
                        "timed_out": {
                            "type": "boolean",
                            "description": "The attempt ran past its task's timeout.",
                        },
                        "stuck": {
                            "type": "boolean",
                            "description": "The thread is still running an attempt that timed "
                            "out: the job keeps its lease and its slots until it returns.",
                        },
                        "stuck_since": NUMBER_OR_NULL,
                        "isolation": {"type": "string", "enum": ["thread", "process"]},
                        "child_pid": {"type": ["integer", "null"]},
                    },
                },
            },
        },
    },
    "Index": {
        "type": "object",
        "required": ["name", "links"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "links": {
                "type": "object",
                "description": "The path of each endpoint, by name.",
                "required": [
                    "stats",
                    "jobs",
                    "schedules",
                    "workers",
                    "running",
                    "health",
                    "openapi",
                    "batches",
                ],
                "additionalProperties": {"type": "string"},
            },
        },
    },
    "Health": {
        "type": "object",
        "description": "`status` alone for a caller without monitor credentials; the "
        "details too for one the monitor's authorisation allows.",
        "required": ["status"],
        "dependentRequired": {
            "healthy": [
                "queue_reachable",
                "workers_expected",
                "workers_alive",
                "oldest_runnable_age",
                "max_age",
                "problems",
            ]
        },
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "healthy": {"type": "boolean"},
            "queue_reachable": {"type": "boolean"},
            "workers_expected": {
                "type": "boolean",
                "description": "JOBQ_START_WORKERS: whether this process should run workers.",
            },
            "workers_alive": {"type": "boolean"},
            "oldest_runnable_age": {
                **NUMBER_OR_NULL,
                "description": "Seconds the oldest due job of an unpaused queue has waited.",
            },
            "max_age": NUMBER_OR_NULL,
            "problems": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Schedule": {
        "type": "object",
        "description": "A recurring schedule as stored in the database. Times are epoch "
        "seconds; exactly one of `cron` and `every` is set.",
        "required": [
            "name",
            "task",
            "cron",
            "every",
            "tz",
            "args",
            "kwargs",
            "missed",
            "next_fire_at",
            "last_fire_at",
            "last_job_id",
            "paused",
        ],
        "properties": {
            "name": {"type": "string"},
            "task": {"type": "string", "description": "The task its jobs run."},
            "cron": {
                "type": ["string", "null"],
                "description": "Five-field cron expression, read in `tz`.",
            },
            "every": {
                "type": ["number", "null"],
                "minimum": 1,
                "description": "Seconds between fires.",
            },
            "tz": {"type": "string", "description": "IANA time zone of `cron`."},
            "args": {"type": "array", "description": "Positional arguments of its jobs."},
            "kwargs": {"type": "object", "description": "Keyword arguments of its jobs."},
            "missed": {
                "type": "string",
                "enum": ["once", "all", "skip"],
                "description": "What happens to fire times missed while no worker ran.",
            },
            "next_fire_at": {
                "type": "number",
                "description": "The next fire time (recomputed on resume while paused).",
            },
            "last_fire_at": {
                **NUMBER_OR_NULL,
                "description": "The last fire time that enqueued a job.",
            },
            "last_job_id": {"type": ["integer", "null"], "description": "The job of that fire."},
            "paused": {"type": "boolean"},
        },
    },
    "ScheduleList": {
        "type": "object",
        "required": ["schedules"],
        "properties": {"schedules": {"type": "array", "items": ref("Schedule")}},
    },
    "Worker": {
        "type": "object",
        "description": "A live worker pool, as it records itself. Times are epoch seconds "
        "(the database server's clock on PostgreSQL).",
        "required": [
            "owner",
            "host",
            "pid",
            "name",
            "queues",
            "concurrency",
            "lease_seconds",
            "started_at",
            "last_seen_at",
            "stopping",
            "leased",
            "boot_id",
            "pid_namespace",
            "process_start",
            "threads",
        ],
        "additionalProperties": False,
        "properties": {
            "owner": {
                "type": "string",
                "description": "`host:pid:name`, the lease owner of its jobs.",
            },
            "host": {"type": "string"},
            "pid": {"type": "integer", "minimum": 0},
            "name": {"type": "string"},
            "queues": {"type": "array", "items": {"type": "string"}},
            "concurrency": {"type": "integer", "minimum": 1, "description": "Its threads."},
            "lease_seconds": {
                "type": "number",
                "description": "Its lease period: it is seen every third of it.",
            },
            "started_at": {"type": "number"},
            "last_seen_at": {"type": "number", "description": "Its last heartbeat."},
            "stopping": {
                "type": "boolean",
                "description": "Asked to stop, it lets its running jobs finish.",
            },
            "leased": {
                "type": "integer",
                "minimum": 0,
                "description": "Jobs leased to it: running or claimed ahead.",
            },
            "boot_id": {
                "type": ["string", "null"],
                "description": "Its host's boot id (Linux), for the same-host check of "
                "dead pools; null where unknown.",
            },
            "pid_namespace": {
                "type": ["integer", "null"],
                "description": "The inode of its pid namespace; null where unknown.",
            },
            "process_start": {
                "type": ["integer", "null"],
                "description": "Its process's start time in clock ticks since boot; "
                "null where unknown.",
            },
            "threads": {
                "type": "array",
                "description": "Its busy threads and their jobs, as of its last heartbeat.",
                "items": ref("WorkerThread"),
            },
        },
    },
    "WorkerThread": {
        "type": "object",
        "description": "A busy thread of a worker pool and the job it runs.",
        "required": ["job_id", "task", "thread", "started_at", "stuck_since"],
        "additionalProperties": False,
        "properties": {
            "job_id": {"type": "integer"},
            "task": {"type": "string"},
            "thread": {"type": "string", "description": "The thread's name."},
            "started_at": {"type": "number", "description": "When it took the job."},
            "stuck_since": {
                "type": ["number", "null"],
                "description": "When the attempt ended (timed out, or given up at a "
                "stop) while the thread still runs the task; null if not stuck.",
            },
        },
    },
    "WorkerList": {
        "type": "object",
        "required": ["workers"],
        "properties": {"workers": {"type": "array", "items": ref("Worker")}},
    },
    "Attempt": {
        "type": "object",
        "description": "An attempt that ended without completing. Times are epoch seconds.",
        "required": [
            "job_id",
            "attempt",
            "lease_owner",
            "started_at",
            "ended_at",
            "outcome",
            "error",
        ],
        "properties": {
            "job_id": {"type": "integer"},
            "attempt": {"type": "integer", "description": "1 for the first."},
            "lease_owner": {
                "type": ["string", "null"],
                "description": "The worker pool that ran it, `host:pid:name`.",
            },
            "started_at": {"type": ["number", "null"]},
            "ended_at": {"type": "number"},
            "outcome": {
                "type": "string",
                "enum": ["failed", "lease_expired", "worker_died", "cancelled"],
            },
            "error": ref("JobError"),
        },
    },
    "TimelineEvent": {
        "type": "object",
        "required": ["at", "kind", "detail", "attempt"],
        "properties": {
            "at": {"type": "number", "description": "Epoch seconds."},
            "kind": {
                "type": "string",
                "enum": [
                    "enqueued",
                    "claimed",
                    "failed",
                    "lease_expired",
                    "worker_died",
                    "cancelled",
                    "retry_scheduled",
                    "completed",
                ],
            },
            "detail": {"type": "string"},
            "attempt": {"type": ["integer", "null"]},
        },
    },
    "JobAttempts": {
        "type": "object",
        "required": ["job_id", "attempts", "timeline"],
        "properties": {
            "job_id": {"type": "integer"},
            "attempts": {"type": "array", "items": ref("Attempt")},
            "timeline": {"type": "array", "items": ref("TimelineEvent")},
        },
    },
    "Throughput": {
        "type": "object",
        "required": ["last", "bucket", "queue", "points"],
        "properties": {
            "last": {"type": "number"},
            "bucket": {"type": "integer"},
            "queue": {"type": ["string", "null"]},
            "points": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["start", "completed", "failed"],
                    "properties": {
                        "start": {"type": "number", "description": "The bucket's start."},
                        "completed": {"type": "integer", "minimum": 0},
                        "failed": {"type": "integer", "minimum": 0},
                    },
                },
            },
        },
    },
    "QueueState": {
        "type": "object",
        "required": ["queue", "paused"],
        "properties": {"queue": {"type": "string"}, "paused": {"type": "boolean"}},
    },
}
