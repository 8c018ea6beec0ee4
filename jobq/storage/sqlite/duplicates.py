"""What an enqueue does on SQLite when a live job of its task holds its unique key
(``NewJob.on_duplicate``: keep it, or replace it while it is pending), or when one
was created less than ``NewJob.throttle`` seconds ago.

Runs inside the caller's write transaction: SQLite's write lock serialises it with
every other enqueue and claim, so reading the holder and changing it is atomic.

Rule: runs SQL only; imports this backend's driver and SQL text, the shared rows
and the storage contract.
"""

from __future__ import annotations

from .._rows import COLS, job_row, row_to_job
from ..base import Enqueued, NewJob
from .driver import Connection
from .sql import LIVE_BY_KEY

REPLACE = "UPDATE jobs SET payload = ?1, priority = ?2, run_at = ?3, updated_at = ?4 WHERE id = ?5"
RELEASE_KEY = "UPDATE jobs SET unique_key = NULL WHERE id = ?1 AND status = 'processing'"
BY_ID = f"SELECT {COLS} FROM jobs WHERE id = ?1"
RECENT_BY_KEY = (
    f"SELECT {COLS} FROM jobs WHERE name = ?1 AND unique_key = ?2 AND created_at > ?3 "
    "ORDER BY created_at DESC LIMIT 1"
)
"""The newest job of task ?1 with key ?2 created after ?3, in any status (index
jobs_key_created)."""


def resolve(conn: Connection, job: NewJob, now: float) -> Enqueued | None:
    """The outcome for ``job`` (which has a unique key) if a live job of its task
    holds the key; None when ``job`` is to be inserted (no holder, or a processing
    holder that gave up the key to it)."""
    if job.throttle is not None:
        recent = conn.query(RECENT_BY_KEY, (job.name, job.unique_key, now - job.throttle))
        if recent:
            return Enqueued(row_to_job(job_row(recent[0])), False)
    rows = conn.query(LIVE_BY_KEY, (job.name, job.unique_key))
    if not rows:
        return None
    holder = job_row(rows[0])
    if job.on_duplicate == "keep":
        return Enqueued(row_to_job(holder), False)
    if holder.status == "processing":
        # It runs with the arguments it was claimed with: never change them; the
        # new arguments go in a new job, which takes the key.
        conn.run(RELEASE_KEY, (holder.id,))
        return None
    run_at = now if job.run_at is None else job.run_at
    conn.run(REPLACE, (job.payload, job.priority, run_at, now, holder.id))
    return Enqueued(row_to_job(job_row(conn.query(BY_ID, (holder.id,))[0])), False, True)
