"""Every default value of jobq, one constant a line with its unit: a default is
written here once and imported wherever it is used (constructors, the command
line, the Flask extension's settings, docs in docstrings).

Rule: a basic value; this module imports nothing.
"""

from __future__ import annotations

QUEUE = "default"
"""Queue name of a task that names none."""

MAX_ATTEMPTS = 3
"""Attempts of a task's jobs when the task names none."""

CONCURRENCY = 4
"""Worker threads of a pool (``start_workers``, ``jobq worker``, ``JOBQ_CONCURRENCY``)."""

STOP_GRACE_SECONDS = 30.0
"""Seconds running jobs get to finish when a pool stops (SIGTERM, exit, ``--grace``)."""

LEASE_SECONDS = 30.0
"""Seconds a claimed job's lease lasts between heartbeats (renewed every third of it)."""

POLL_INTERVAL = 0.01
"""Seconds between an idle pool's looks for jobs enqueued by other processes."""

NOTIFIED_POLL_INTERVAL = 0.1
"""Seconds between idle looks for work when the storage notifies of new jobs."""

SCHEDULE_CHECK_INTERVAL = 1.0
"""Seconds between looks for schedules that are due: how late a fire may start."""

EXPIRY_CHECK_INTERVAL = 1.0
"""Seconds between a worker pool's looks for pending jobs past their expiry."""

UNKNOWN_TASK_WAIT = 60.0
"""Seconds a job of an unregistered task waits with ``unknown_tasks="wait"``."""

MAX_PAYLOAD_BYTES = 1024 * 1024
"""Largest job arguments accepted, in bytes of JSON (1 MiB)."""

MAX_CLAIM = 256
"""Most jobs a pool claims in one transaction."""

KEEP_COMPLETED_SECONDS = 7 * 86400.0
"""How long completed jobs are kept (7 days)."""

KEEP_FAILED_SECONDS = 30 * 86400.0
"""How long failed jobs are kept (30 days)."""

KEEP_CANCELLED_SECONDS = 7 * 86400.0
"""How long cancelled jobs are kept (7 days)."""

RETENTION_INTERVAL = 300.0
"""Seconds between deletions of jobs older than their retention."""

INCIDENT_REMINDER_SECONDS = 300.0
"""Seconds between "still failing" log lines while a worker's database operations fail."""

JOB_LOG_LINES = 100
"""Most log lines kept per job (``jobq.current_job().log``); beyond it the oldest go."""

JOB_LOG_LINE_CHARS = 1000
"""Most characters kept of one job log line; a longer one is cut and marked."""

ISOLATION_CHECK_INTERVAL = 0.25
"""Most seconds between a worker thread's checks of a process-isolated attempt's
timeout and cancel request while its child runs (the timeout itself is met exactly)."""

ISOLATION_SERVER_TIMEOUT = 10.0
"""Seconds a worker waits for its isolation fork server to answer (fork a child,
report how one ended) before it kills that server and starts another."""
