"""The registry of live worker pools in SQLite: the
:class:`~jobq.storage.workers.WorkerRows` part of
:class:`~jobq.storage.sqlite.SQLiteStorage`; its arguments were checked by
:class:`~jobq.storage.workers.CheckedWorkers`.

Rule: runs SQL only; imports this backend's database and the storage contract.
"""

from __future__ import annotations

from ..workers import (
    FORGET_WORKERS_AFTER,
    WORKER_COLS,
    NewWorker,
    WorkerInfo,
    queues_json,
    worker_infos,
)
from .database import Database

# Processing rows only (the partial index jobs_lease holds them): a handful per pool.
LEASED = "SELECT lease_owner, count(*) FROM jobs WHERE status = 'processing' GROUP BY lease_owner"


class SQLiteWorkers:
    """The worker pools registered in one SQLite file."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def register_worker(self, worker: NewWorker, now: float) -> None:
        with self._db.write() as conn:
            conn.run("DELETE FROM workers WHERE last_seen_at < ?", (now - FORGET_WORKERS_AFTER,))
            conn.run(
                f"INSERT OR REPLACE INTO workers ({WORKER_COLS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                (
                    worker.owner,
                    worker.host,
                    worker.pid,
                    worker.name,
                    queues_json(worker.queues),
                    worker.concurrency,
                    float(worker.lease_seconds),
                    now,
                    now,
                ),
            )

    def worker_seen(self, owner: str, now: float, concurrency: int | None, stopping: bool) -> bool:
        with self._db.write() as conn:
            changed = conn.run(
                "UPDATE workers SET last_seen_at = ?1, "
                "concurrency = coalesce(?2, concurrency), stopping = ?3 WHERE owner = ?4",
                (now, concurrency, int(stopping), owner),
            )
        return changed == 1

    def unregister_worker(self, owner: str) -> bool:
        with self._db.write() as conn:
            return conn.run("DELETE FROM workers WHERE owner = ?", (owner,)) == 1

    def live_workers(self, now: float, max_age: float | None) -> list[WorkerInfo]:
        with self._db.read() as conn:
            rows = conn.query(
                f"SELECT {WORKER_COLS} FROM workers "
                "WHERE last_seen_at >= ?1 - coalesce(?2, lease_seconds) ORDER BY host, pid, name",
                (now, max_age),
            )
            leased = {str(owner): int(count) for owner, count in conn.query(LEASED)} if rows else {}
        return worker_infos(rows, leased)
