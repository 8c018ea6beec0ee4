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

from ...errors import UnknownDependency
from ..base import NewJob
from ..dependencies import WAITING_RUN_AT
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
_LIVE = frozenset({"pending", "processing"})
_ENDED = frozenset({"failed", "cancelled"})


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
        wanted = list(dict.fromkeys(job.depends_on))
        if previous is not None and previous not in wanted:
            wanted.append(previous)
        found = {row[0]: (row[1], row[2]) for row in conn.execute(_STATUSES, (wanted,))}
        missing = sorted(set(wanted) - found.keys())
        if missing:
            raise UnknownDependency(missing)
        policy = job.on_dependency_failure
        result_from = previous if previous is not None and job.takes_result else None
        parent_result = None
        if result_from is not None and found[result_from][0] == "completed":
            parent_result = found[result_from][1]
        failed = [d for d in wanted if found[d][0] in _ENDED]
        open_ = [d for d in wanted if found[d][0] in _LIVE]
        run_at = now if job.run_at is None else job.run_at
        status, error, finished = "pending", None, None
        waiting_for, waiting_run_at = 0, None
        if failed and policy != "run":
            status = "failed" if policy == "fail" else "cancelled"
            error, finished = f"job {failed[0]} {found[failed[0]][0]}", now
        elif open_:
            waiting_for, waiting_run_at, run_at = len(open_), run_at, WAITING_RUN_AT
        row = conn.execute(
            _INSERT,
            (
                job.queue,
                job.name,
                job.payload,
                job.priority,
                status,
                job.max_attempts,
                run_at,
                now,
                now,
                job.expires_at,
                job.limit_key,
                waiting_for,
                waiting_run_at,
                result_from,
                parent_result,
                policy,
                None if error is None else "DependencyFailed",
                error,
                finished,
            ),
        ).fetchone()
        assert row is not None
        job_id = int(row[0])
        # An edge to a dependency that has ended already counted (or ended the job).
        resolved = [found[d][0] not in _LIVE for d in wanted]
        conn.execute(_EDGES, (job_id, wanted, resolved))
        return job_id

    def dependencies_of(self, job_id: int) -> list[int]:
        return [row[0] for row in self._db.run(_OF, (job_id,))]

    def dependents_of(self, job_id: int) -> list[int]:
        return [row[0] for row in self._db.run(_ON, (job_id,))]
