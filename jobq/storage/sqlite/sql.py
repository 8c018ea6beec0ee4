"""The SQL text that :class:`~jobq.storage.sqlite.SQLiteStorage` runs, and the
parameters and results of its statements.

Statements use numbered parameters (``?1``) so one value can appear twice,
and are kept as constants so every call reuses the driver's prepared statement.

Rule: imports only the shared row columns and the storage contract; runs nothing.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from ...job import make_job
from .._rows import COLS, SCHEDULE_COLS, JobRow
from ..base import Job, JobError, JobStatus, NewJob

INSERT = (
    "INSERT INTO jobs (queue, name, payload, priority, status, max_attempts, run_at, "
    "unique_key, created_at, updated_at, expires_at, limit_key) "
    "VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?8, ?8, ?9, ?10)"
)
INSERT_RETURNING = f"{INSERT} RETURNING {COLS}"
"""INSERT returning the new job (SQLite >= 3.35)."""
INSERTED = f"SELECT {COLS} FROM jobs WHERE id = last_insert_rowid()"
"""The job INSERT just stored, where RETURNING is missing."""
INSERT_EACH = (
    "INSERT INTO jobs (queue, name, payload, priority, status, max_attempts, run_at, "
    "unique_key, created_at, updated_at, expires_at) SELECT ?1, ?2, value, ?3, 'pending', ?4, "
    "?5, NULL, ?6, ?6, ?8 FROM json_each(?7)"
)
"""Jobs sharing everything but their payload (?7: a JSON array of payload strings),
without a limit key. json_each yields array elements in order, so ids follow the array."""
BULK_SIZES = (100, 32, 8, 1)
"""Rows per multi-row INSERT in bulk enqueue (9 parameters a row: under SQLite's
oldest limit of 999 parameters)."""


@functools.cache
def bulk_insert(rows: int) -> str:
    """An INSERT of ``rows`` jobs without unique keys, parameters row after row:
    queue, name, payload, priority, max_attempts, run_at, now, expires_at, limit_key."""
    values = ", ".join(
        f"(?{b + 1}, ?{b + 2}, ?{b + 3}, ?{b + 4}, 'pending', ?{b + 5}, ?{b + 6}, NULL, "
        f"?{b + 7}, ?{b + 7}, ?{b + 8}, ?{b + 9})"
        for b in range(0, 9 * rows, 9)
    )
    return (
        "INSERT INTO jobs (queue, name, payload, priority, status, max_attempts, run_at, "
        f"unique_key, created_at, updated_at, expires_at, limit_key) VALUES {values}"
    )


LIVE_BY_KEY = (
    f"SELECT {COLS} FROM jobs WHERE name = +?1 AND unique_key = +?2 "
    "AND status IN ('pending', 'processing')"
)
"""The live job of task ?1 holding unique key ?2 (keys are scoped to their task)."""
# A bare parameter compared with an indexed column (queue = ?4) or given to
# LIMIT makes SQLite builds with STAT4 (apsw's) prepare the statement again on
# every run, five times the cost of the run itself; "+?4" is the same value
# without that.
# Runnable rows of one queue, in claim order, straight off the jobs_claim index.
# The guards sit in LIMIT because SQLite checks LIMIT 0 before the scan but a
# constant WHERE term on every row: a paused queue, or one with nothing due
# (min(run_at) is O(log n) on jobs_due), costs a lookup instead of a walk over
# every job scheduled for later.
# Expired jobs are passed over (the expiry sweep ends them). The test reads the row
# only while some pending job has expired: "none has" is one seek on jobs_expiring,
# run once per statement, and then the claim stays on the index alone.
_NOT_EXPIRED = (
    "AND (?3 < coalesce((SELECT min(expires_at) FROM jobs INDEXED BY jobs_expiring "
    "WHERE expires_at IS NOT NULL AND status = 'pending'), ?3 + 1) "
    "OR expires_at IS NULL OR expires_at > ?3) "
)
_RUNNABLE = (
    "FROM jobs INDEXED BY jobs_claim WHERE status = 'pending' AND queue = +?4 "
    f"{_NOT_EXPIRED}AND run_at <= ?3 "
    "ORDER BY priority DESC, run_at, id LIMIT CASE WHEN "
    "?3 >= (SELECT min(run_at) FROM jobs INDEXED BY jobs_due "
    "WHERE status = 'pending' AND queue = +?4) "
    "AND NOT EXISTS (SELECT 1 FROM paused_queues WHERE queue = +?4) THEN ?5 ELSE 0 END"
)
_TAKE = (
    "UPDATE jobs SET status = 'processing', attempts = attempts + 1, lease_owner = ?1, "
    "lease_expires_at = ?2, started_at = ?3, updated_at = ?3,"
)
CANDIDATES = f"SELECT {COLS} {_RUNNABLE}"
CANDIDATES_EXCEPT = CANDIDATES.replace(
    "AND run_at <= ?3 ORDER BY",
    "AND run_at <= ?3 AND name NOT IN (SELECT value FROM json_each(?6)) ORDER BY",
)
"""CANDIDATES leaving out the tasks named in ?6 (a JSON array): those at a limit."""
CANDIDATES_EXCEPT_GROUPS = CANDIDATES_EXCEPT.replace(
    "(?6)) ORDER BY",
    "(?6)) AND (name, coalesce(limit_key, '')) NOT IN (SELECT json_extract(value, '$[0]'), "
    "json_extract(value, '$[1]') FROM json_each(?7)) ORDER BY",
)
"""CANDIDATES_EXCEPT also leaving out the (task, limit key) groups in ?7 (a JSON
array of ``[task, key]`` pairs, ``""`` for no key): keys at a per-key limit. Their
jobs are passed over in the index one by one (a table lookup each, about 0.5 µs):
the cost of a blocked key grows with its jobs ahead of the first runnable one. (A
row value compared with the pairs costs half of comparing ``name || sep || key``.)"""
RUNNING_OF = (
    "SELECT name, limit_key, count(*) FROM jobs INDEXED BY jobs_running "
    "WHERE status = 'processing' AND name IN (SELECT value FROM json_each(?1)) "
    "GROUP BY name, limit_key"
)
# The row was just read as a candidate in this same write transaction.
CLAIM_ID = f"{_TAKE} lease_token = ?5 WHERE id = ?4 AND status = 'pending'"


def padded_size(count: int) -> int:
    """The next power of two >= ``count``: batch statements come in few sizes, so
    few are prepared and cached."""
    return 1 << (count - 1).bit_length()


@functools.cache
def take_in(size: int) -> str:
    """Claim ``size`` candidate ids (parameters ?4...) at once, each with a fresh
    random token; returns (id, lease_token) rows. Needs RETURNING."""
    ids = ", ".join(f"?{n}" for n in range(4, 4 + size))
    return (
        f"{_TAKE} lease_token = lower(hex(randomblob(16))) WHERE id IN ({ids}) "
        "AND status = 'pending' RETURNING id, lease_token"
    )


@functools.cache
def candidate_ids(queues: int) -> str:
    """The ids of the best ?2 runnable jobs of the queues ?3, ?4 ... (``queues`` of
    them) at ?1 = now, as one JSON array: one row, so the driver hands the GIL back
    and forth once rather than once a job while the write lock is held. Each queue's
    best ?2 come off its own index (without the table where SQLite sees that the
    index's condition covers ``status``: 3.41 and later); SQLite merges them."""

    def runnable(queue: int) -> str:
        numbers = {"3": "1", "4": str(queue), "5": "2"}
        return re.sub(r"\?([345])\b", lambda m: "?" + numbers[m.group(1)], _RUNNABLE)

    if queues == 1:
        return f"SELECT json_group_array(id) FROM (SELECT id {runnable(3)})"
    parts = " UNION ALL ".join(
        f"SELECT * FROM (SELECT id, priority, run_at {runnable(3 + n)})" for n in range(queues)
    )
    merged = f"{parts} ORDER BY priority DESC, run_at, id LIMIT +?2"
    return f"SELECT json_group_array(id) FROM ({merged})"


TAKE_IDS = (
    f"{_TAKE} lease_token = lower(hex(randomblob(16))) "
    "WHERE id IN (SELECT value FROM json_each(?4)) AND status = 'pending'"
)
"""Claim the jobs whose ids ?4 lists (a JSON array), each with a fresh random token."""
JOBS_IN = f"SELECT {COLS} FROM jobs WHERE id IN (SELECT value FROM json_each(?1))"
"""The jobs whose ids ?1 lists (a JSON array)."""


COMPLETE_CHUNK = 256
"""Completions per statement (3 parameters each, under SQLite's oldest limit of 999)."""


@functools.cache
def complete_from(size: int) -> str:
    """Complete ``size`` (id, token, result) triples after ?1 = now. Needs UPDATE ...
    FROM (and RETURNING, to add ``RETURNING jobs.id, jobs.queue``)."""
    values = ", ".join(f"(?{n}, ?{n + 1}, ?{n + 2})" for n in range(2, 2 + 3 * size, 3))
    return (
        "UPDATE jobs SET status = 'completed', result = v.column3, finished_at = ?1, "
        f"updated_at = ?1, lease_expires_at = NULL FROM (VALUES {values}) AS v "
        "WHERE jobs.id = v.column1 AND jobs.lease_token = v.column2 "
        "AND jobs.status = 'processing'"
    )


_HELD = "WHERE id = ?{0} AND lease_token = ?{1} AND status = 'processing'"
RENEW = "UPDATE jobs SET lease_expires_at = ?1, updated_at = ?2 " + _HELD.format(3, 4)
PROGRESS = "UPDATE jobs SET progress = ?1, updated_at = ?2 " + _HELD.format(3, 4)
COMPLETE = (
    "UPDATE jobs SET status = 'completed', result = ?1, finished_at = ?2, updated_at = ?2, "
    "lease_expires_at = NULL " + _HELD.format(3, 4)
)
FINISH_CANCELLED = (
    "UPDATE jobs SET status = 'cancelled', finished_at = ?1, updated_at = ?1, "
    "lease_expires_at = NULL " + _HELD.format(2, 3)
)
RELEASE = (
    "UPDATE jobs SET status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END, "
    "run_at = ?1, attempts = max(attempts - 1, 0), "
    "finished_at = CASE WHEN cancel_requested THEN ?2 END, lease_expires_at = NULL, "
    "updated_at = ?2 " + _HELD.format(3, 4)
)
HAS_RUNNABLE = (
    "SELECT EXISTS (SELECT 1 FROM jobs INDEXED BY jobs_due "
    "WHERE status = 'pending' AND queue = +?1 AND run_at <= ?2) "
    "AND NOT EXISTS (SELECT 1 FROM paused_queues WHERE queue = +?1)"
)
_RETRYABLE = "(NOT cancel_requested AND ?1 IS NOT NULL AND attempts < max_attempts)"
FAIL = (
    "UPDATE jobs SET status = CASE WHEN cancel_requested THEN 'cancelled' "
    f"WHEN {_RETRYABLE} THEN 'pending' ELSE 'failed' END, "
    f"run_at = CASE WHEN {_RETRYABLE} THEN ?1 ELSE run_at END, "
    f"finished_at = CASE WHEN {_RETRYABLE} THEN NULL ELSE ?2 END, "
    "error_type = ?3, error_message = ?4, error_traceback = ?5, lease_expires_at = NULL, "
    "updated_at = ?2 " + _HELD.format(6, 7)
)
_REQUEUE = "(NOT cancel_requested AND attempts < max_attempts)"
RESCUE = (
    "UPDATE jobs SET status = CASE WHEN cancel_requested THEN 'cancelled' "
    f"WHEN {_REQUEUE} THEN 'pending' ELSE 'failed' END, "
    f"finished_at = CASE WHEN {_REQUEUE} THEN NULL ELSE ?1 END, "
    "error_type = 'LeaseExpired', error_message = 'lease expired (worker died?) during attempt ' "
    "|| attempts || ' of ' || max_attempts || '; last held by ' || coalesce(lease_owner, '?'), "
    "error_traceback = NULL, lease_expires_at = NULL, updated_at = ?1 "
    "WHERE id = ?2 AND status = 'processing'"
)
_EXPIRED = (
    "FROM jobs INDEXED BY jobs_expiring WHERE expires_at IS NOT NULL AND status = 'pending' "
    "AND expires_at <= ?1"
)
ANY_EXPIRED = f"SELECT EXISTS (SELECT 1 {_EXPIRED})"
EXPIRED_IDS = (
    f"SELECT json_group_array(id) FROM (SELECT id {_EXPIRED} ORDER BY expires_at LIMIT ?2)"
)
EXPIRE = (
    "UPDATE jobs SET status = 'cancelled', finished_at = ?1, updated_at = ?1, "
    "error_type = 'Expired', error_message = 'expired at ' "
    "|| strftime('%Y-%m-%dT%H:%M:%SZ', expires_at, 'unixepoch') || CASE WHEN attempts = 0 "
    "THEN ' before it started' ELSE ' before attempt ' || (attempts + 1) || ' started' END, "
    "error_traceback = NULL WHERE id IN (SELECT value FROM json_each(?2)) AND status = 'pending'"
)
"""End the pending jobs whose ids ?2 lists (a JSON array) as expired at ?1 = now."""
CANCEL = (
    "UPDATE jobs SET status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END, "
    "cancel_requested = CASE WHEN status = 'processing' THEN 1 ELSE cancel_requested END, "
    "finished_at = CASE WHEN status = 'pending' THEN ?1 ELSE finished_at END, updated_at = ?1 "
    "WHERE id = ?2 AND status IN ('pending', 'processing')"
)
RETRY = (
    "UPDATE jobs SET status = 'pending', attempts = 0, run_at = ?1, cancel_requested = 0, "
    "expires_at = NULL, result = NULL, progress = NULL, started_at = NULL, finished_at = NULL, "
    "lease_owner = NULL, "
    "lease_token = NULL, lease_expires_at = NULL, updated_at = ?2 "
    "WHERE id = ?3 AND status IN ('failed', 'cancelled')"
)


def claimed_job(r: JobRow, owner: str, token: str, expires: float, now: float) -> Job:
    """The job of candidate row ``r`` as :data:`CLAIM_ID` left it."""
    return make_job(
        r.id,
        r.queue,
        r.name,
        r.payload,
        r.priority,
        JobStatus.PROCESSING,
        r.attempts + 1,
        r.max_attempts,
        r.run_at,
        owner,
        token,
        expires,
        None
        if r.error_type is None
        else JobError(r.error_type, r.error_message or "", r.error_traceback),
        r.result,
        r.progress,
        r.unique_key,
        bool(r.cancel_requested),
        r.created_at,
        now,
        r.finished_at,
        now,
        r.expires_at,
        r.limit_key,
        r.batch_id,
    )


def insert_params(job: NewJob, now: float) -> tuple[Any, ...]:
    """Parameters of :data:`INSERT` for ``job``."""
    run_at = now if job.run_at is None else job.run_at
    return (
        job.queue,
        job.name,
        job.payload,
        job.priority,
        job.max_attempts,
        run_at,
        job.unique_key,
        now,
        job.expires_at,
        job.limit_key,
    )


FIRE = (
    "UPDATE schedules SET next_fire_at = ?1, updated_at = ?3 "
    "WHERE name = ?4 AND next_fire_at = ?2 AND NOT paused AND ?2 <= ?3"
)
"""The compare-and-set that lets exactly one process fire a schedule's fire time."""
STATS_COUNTS = "SELECT queue, status, jobs FROM job_counts WHERE jobs > 0"
# Per queue holding pending jobs: how many wait for a later time, and the oldest due
# run_at. Each is a seek on jobs_due: the cost follows the queues and the jobs
# scheduled for later, not the table.
STATS_DUE = (
    "SELECT c.queue, (SELECT count(*) FROM jobs INDEXED BY jobs_due WHERE status = 'pending' "
    "AND queue = c.queue AND run_at > ?1), (SELECT min(run_at) FROM jobs INDEXED BY jobs_due "
    "WHERE status = 'pending' AND queue = c.queue AND run_at <= ?1) "
    "FROM job_counts c WHERE c.status = 'pending' AND c.jobs > 0"
)
STATS_RECENT = (
    "SELECT status, count(*) FROM jobs INDEXED BY jobs_finished_at "
    "WHERE status IN ('completed', 'failed') AND finished_at > ?1 - 60 AND finished_at <= ?1 "
    "GROUP BY status"
)
OLDEST_DUE = (
    "SELECT min((SELECT min(run_at) FROM jobs INDEXED BY jobs_due WHERE status = 'pending' "
    "AND queue = c.queue)) FROM job_counts c WHERE c.status = 'pending' AND c.jobs > 0 "
    "AND NOT EXISTS (SELECT 1 FROM paused_queues p WHERE p.queue = c.queue)"
)
"""The earliest run_at of a pending job in an unpaused queue: one seek per queue."""
SCHEDULE_BY_NAME = f"SELECT {SCHEDULE_COLS} FROM schedules WHERE name = ?"
