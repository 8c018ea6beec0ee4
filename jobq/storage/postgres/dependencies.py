"""Dependencies in PostgreSQL: enqueue jobs that wait for others.

What happens when a dependency ends is the database's own work: statement-level
triggers (schema migration 9) count the dependents of completed jobs down, end
or count down those of failed and cancelled ones in a loop (nested firings
return at once, so a chain of any length cascades without recursion), and
NOTIFY the queues of jobs made runnable, all in the ending transaction.

Enqueue locks the dependencies' rows (``FOR SHARE``) before reading their
status: a dependency completing meanwhile waits for this transaction, and its
trigger then sees the new dependent.

The :class:`~jobq.storage.dependencies.DependencyStore` part of
:class:`~jobq.storage.postgres.PostgresStorage`; arguments were checked by
:class:`~jobq.storage.checked.CheckedStorage`.

Rule: runs SQL only; imports this backend's connections and SQL text, the
storage contract and its errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from ..base import NewJob
from ..dependencies import dependency_list, place
from . import sql
from .connection import Database

_INSERT = (
    "INSERT INTO jobq_jobs (queue, name, payload, priority, status, max_attempts, run_at, "
    "created_at, updated_at, expires_at, limit_key, waiting_for, waiting_run_at, result_from, "
    "parent_result, on_dependency_failure, error_type, error_message, finished_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "RETURNING id"
)
_EDGES = (
    "INSERT INTO jobq_job_dependencies (depends_on_id, job_id, resolved) "
    "SELECT d, %s, r FROM unnest(%s::bigint[], %s::boolean[]) AS e(d, r) ON CONFLICT DO NOTHING"
)
_STATUSES = (
    "SELECT id, status, result FROM jobq_jobs WHERE id = ANY(%s::bigint[]) ORDER BY id FOR SHARE"
)
_OF = "SELECT depends_on_id FROM jobq_job_dependencies WHERE job_id = %s ORDER BY depends_on_id"
_ON = "SELECT job_id FROM jobq_job_dependencies WHERE depends_on_id = %s ORDER BY job_id"


class PostgresDependencies:
    """Stores jobs with dependencies in one PostgreSQL database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def enqueue(self, jobs: Sequence[NewJob], now: float, chain: bool) -> list[int]:
        ids: list[int] = []
        with self._db.conn() as conn, conn.transaction():
            moment = float(
                conn.execute(sql.CURRENT_TIME, {"now": self._db.now(now)}).fetchall()[0][0]
            )
            for job in jobs:
                previous = ids[-1] if chain and ids else None
                ids.append(self._insert(conn, job, previous, moment))
            queues = {job.queue for job in jobs}
            conn.execute(sql.NOTIFY, (sorted(queues),))
        return ids

    def _insert(
        self, conn: psycopg.Connection[Any], job: NewJob, previous: int | None, now: float
    ) -> int:
        wanted = dependency_list(job, previous)
        rows = conn.execute(_STATUSES, (wanted,)).fetchall()
        p = place(job, previous, {row[0]: (row[1], row[2]) for row in rows}, now)
        row = conn.execute(
            _INSERT,
            (
                job.queue,
                job.name,
                job.payload,
                job.priority,
                p.status,
                job.max_attempts,
                p.run_at,
                now,
                now,
                job.expires_at,
                job.limit_key,
                p.waiting_for,
                p.waiting_run_at,
                p.result_from,
                p.parent_result,
                job.on_dependency_failure,
                None if p.error is None else "DependencyFailed",
                p.error,
                p.finished_at,
            ),
        ).fetchone()
        assert row is not None
        job_id = int(row[0])
        conn.execute(_EDGES, (job_id, p.wanted, p.resolved))
        return job_id

    def dependencies_of(self, job_id: int) -> list[int]:
        return [row[0] for row in self._db.run(_OF, (job_id,))]

    def dependents_of(self, job_id: int) -> list[int]:
        return [row[0] for row in self._db.run(_ON, (job_id,))]
