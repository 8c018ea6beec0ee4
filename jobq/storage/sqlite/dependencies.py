"""Dependencies in SQLite: enqueue jobs that wait for others, and finish, before
each commit, what the dependency triggers started.

The triggers (schema migration 9) count dependents down when a dependency
completes, and leave a row in ``job_dependency_events`` for each dependency that
failed or was cancelled and for each job made runnable. SQLite triggers do not
fire themselves again (and could nest 1,000 deep at most), so the cascade down a
chain is a loop here: :meth:`SQLiteDependencies.settle` runs inside every write
transaction just before its COMMIT (one of :attr:`Database.before_commit`), ends or
counts down the dependents of each ended dependency, whose own endings leave
new rows, until none is left. Without events it costs one read of an empty table.

The :class:`~jobq.storage.dependencies.DependencyStore` part of
:class:`~jobq.storage.sqlite.SQLiteStorage`; arguments were checked by
:class:`~jobq.storage.checked.CheckedStorage`.

Rule: runs SQL only; imports this backend's database, the storage contract and
its errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ..base import NewJob
from ..dependencies import WAITING_RUN_AT, dependency_list, place
from .database import Database
from .driver import Connection

_INSERT = (
    "INSERT INTO jobs (queue, name, payload, priority, status, max_attempts, run_at, "
    "created_at, updated_at, expires_at, limit_key, waiting_for, waiting_run_at, result_from, "
    "parent_result, on_dependency_failure, error_type, error_message, finished_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
)
_EDGES = (
    "INSERT OR IGNORE INTO job_dependencies (depends_on_id, job_id, resolved) "
    "SELECT json_extract(value, '$[0]'), ?2, json_extract(value, '$[1]') FROM json_each(?1)"
)
_STATUSES = "SELECT id, status, result FROM jobs WHERE id IN (SELECT value FROM json_each(?1))"
_EVENTS = (
    "SELECT id, kind, job_id, status, queue, at FROM job_dependency_events ORDER BY id LIMIT 500"
)
_ANY_EVENT = "SELECT EXISTS (SELECT 1 FROM job_dependency_events)"
_DROP_EVENTS = "DELETE FROM job_dependency_events WHERE id <= ?1"
_DEPENDENTS = "(SELECT job_id FROM job_dependencies WHERE depends_on_id = ?1 AND NOT resolved)"
_RESOLVED = "UPDATE job_dependencies SET resolved = 1 WHERE depends_on_id = ?1 AND NOT resolved"
_WAITING = f"status = 'pending' AND run_at = {WAITING_RUN_AT!r}"
# The dependents that end with their dependency (policies "cancel" and "fail").
_END_DEPENDENTS = (
    "UPDATE jobs SET status = CASE WHEN on_dependency_failure = 'fail' THEN 'failed' "
    "ELSE 'cancelled' END, error_type = 'DependencyFailed', error_message = ?2, "
    "error_traceback = NULL, run_at = coalesce(waiting_run_at, created_at), waiting_for = 0, "
    f"finished_at = ?3, updated_at = ?3 WHERE id IN {_DEPENDENTS} AND {_WAITING} "
    "AND on_dependency_failure IN ('cancel', 'fail')"
)
# Policy "run": the dependency counts as done, as a completion would (no result).
_READY_AFTER = (
    "INSERT INTO job_dependency_events (kind, job_id, queue, at) "
    f"SELECT 'ready', id, queue, ?2 FROM jobs WHERE id IN {_DEPENDENTS} AND {_WAITING} "
    "AND on_dependency_failure = 'run' AND waiting_for = 1"
)
_COUNT_DOWN = (
    "UPDATE jobs SET waiting_for = waiting_for - 1, run_at = CASE WHEN waiting_for = 1 "
    "THEN max(coalesce(waiting_run_at, ?2), ?2) ELSE run_at END, updated_at = ?2 "
    f"WHERE id IN {_DEPENDENTS} AND {_WAITING} AND on_dependency_failure = 'run'"
)
_OF = "SELECT depends_on_id FROM job_dependencies WHERE job_id = ?1 ORDER BY depends_on_id"
_ON = "SELECT job_id FROM job_dependencies WHERE depends_on_id = ?1 ORDER BY job_id"


class SQLiteDependencies:
    """Stores jobs with dependencies and settles dependents before each commit."""

    def __init__(self, db: Database, woken: Callable[[set[str]], None]) -> None:
        self._db = db
        self._woken = woken
        db.before_commit.append(self.settle)

    def enqueue(self, jobs: Sequence[NewJob], now: float, chain: bool) -> list[int]:
        ids: list[int] = []
        with self._db.write() as conn:
            for job in jobs:
                previous = ids[-1] if chain and ids else None
                ids.append(self._insert(conn, job, previous, now))
        return ids

    def _insert(self, conn: Connection, job: NewJob, previous: int | None, now: float) -> int:
        wanted = dependency_list(job, previous)
        rows = conn.query(_STATUSES, (json.dumps(wanted),))
        p = place(job, previous, {row[0]: (row[1], row[2]) for row in rows}, now)
        conn.run(
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
        )
        job_id = int(conn.query("SELECT last_insert_rowid()")[0][0])
        edges = [[d, int(r)] for d, r in zip(p.wanted, p.resolved, strict=True)]
        conn.run(_EDGES, (json.dumps(edges), job_id))
        return job_id

    def settle(self, conn: Connection) -> Callable[[], None] | None:
        """Finish what the dependency triggers of this transaction started (see the
        module docstring); the wake-up of other processes to run after the commit."""
        if not conn.query(_ANY_EVENT)[0][0]:
            return None
        queues: set[str] = set()
        while rows := conn.query(_EVENTS):
            conn.run(_DROP_EVENTS, (rows[-1][0],))
            for _, kind, job_id, status, queue, at in rows:
                if kind == "ready":
                    queues.add(queue)
                else:
                    self._ended(conn, job_id, status, at)
        if not queues:
            return None
        return lambda: self._woken(queues)

    def _ended(self, conn: Connection, job_id: int, status: str, at: float) -> None:
        """Apply the policies of the waiting dependents of ``job_id``, which ended
        ``status`` (failed, cancelled, or deleted before it ended) at ``at``."""
        said = "was deleted" if status == "deleted" else status
        params: tuple[Any, ...] = (job_id, f"job {job_id} {said}", at)
        conn.run(_END_DEPENDENTS, params)
        conn.run(_READY_AFTER, (job_id, at))
        conn.run(_COUNT_DOWN, (job_id, at))
        conn.run(_RESOLVED, (job_id,))

    def dependencies_of(self, job_id: int) -> list[int]:
        return [row[0] for row in self._db.query(_OF, (job_id,))]

    def dependents_of(self, job_id: int) -> list[int]:
        return [row[0] for row in self._db.query(_ON, (job_id,))]
