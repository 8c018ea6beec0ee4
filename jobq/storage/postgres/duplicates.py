"""``on_duplicate="replace"`` on PostgreSQL: insert a job, or give the pending job
of its task that holds its unique key the new arguments and run time; and the
lookup of a throttled enqueue (``NewJob.throttle``).

One statement decides (INSERT ... ON CONFLICT ... DO UPDATE ... WHERE status =
'pending' on the unique partial index): the holder's row is locked while it is
changed, so a claim racing it either takes the job before (then the holder is
processing, is never changed, and a new job is inserted) or after (then it runs
the new arguments). Runs in the caller's transaction.

Rule: runs SQL only; imports this backend's SQL text, the shared rows and the
storage contract.
"""

from __future__ import annotations

from typing import Any

import psycopg

from .._rows import job_row, row_to_job
from ..base import Enqueued, NewJob, StorageError
from . import sql
from .connection import RETRIES


def throttled(
    conn: psycopg.Connection[Any], job: NewJob, params: dict[str, Any]
) -> Enqueued | None:
    """The job of ``job``'s task and key created less than ``job.throttle`` seconds
    ago, if any. Takes a lock on the task and key held until the transaction ends, so
    that throttled enqueues of one key decide one after another (the unique index
    covers live jobs only, and the job found may have ended)."""
    conn.execute(sql.KEY_LOCK, (job.name, job.unique_key))
    row = conn.execute(sql.RECENT_BY_KEY, {**params, "throttle": job.throttle}).fetchone()
    return None if row is None else Enqueued(row_to_job(job_row(row)), False)


def replace(conn: psycopg.Connection[Any], job: NewJob, params: dict[str, Any]) -> Enqueued:
    """Store ``job`` (``params`` its ENQUEUE parameters), replacing the pending holder
    of its key; a processing holder gives up the key and ``job`` is inserted."""
    for _ in range(RETRIES):
        row = conn.execute(sql.ENQUEUE_REPLACE, params).fetchone()
        if row is not None:
            *columns, inserted = row
            stored = row_to_job(job_row(columns))
            conn.execute(sql.NOTIFY, ([stored.queue],))
            return Enqueued(stored, bool(inserted), not inserted)
        # The holder is processing and locked by us: it keeps running with the
        # arguments it was claimed with; the key passes to the job we insert.
        conn.execute(sql.RELEASE_KEY, (job.name, job.unique_key))
    raise StorageError(f"unique_key {job.unique_key!r} kept changing hands; try again")
