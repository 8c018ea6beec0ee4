"""The registry of live worker pools in PostgreSQL: the
:class:`~jobq.storage.workers.WorkerRows` part of
:class:`~jobq.storage.postgres.PostgresStorage`; its arguments were checked by
:class:`~jobq.storage.workers.CheckedWorkers`. Times read the server's clock
(with ``clock="database"``), as leases do, so hosts with skewed clocks agree on
which pools are live.

Rule: runs SQL only; imports this backend's connections and SQL text and the
storage contract.
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
from .connection import Database
from .sql import NOW

REGISTER = (
    # The DELETE leaves the owner's own row to the upsert: one statement must not
    # change a row twice.
    "WITH gone AS (DELETE FROM jobq_workers "
    f"WHERE last_seen_at < {NOW} - %(forget)s AND owner <> %(owner)s) "
    f"INSERT INTO jobq_workers ({WORKER_COLS}) VALUES (%(owner)s, %(host)s, %(pid)s, "
    f"%(name)s, %(queues)s, %(concurrency)s, %(lease)s, {NOW}, {NOW}, false) "
    "ON CONFLICT (owner) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
    "name = excluded.name, queues = excluded.queues, concurrency = excluded.concurrency, "
    "lease_seconds = excluded.lease_seconds, started_at = excluded.started_at, "
    "last_seen_at = excluded.last_seen_at, stopping = false"
)
SEEN = (
    f"UPDATE jobq_workers SET last_seen_at = {NOW}, "
    "concurrency = coalesce(%(concurrency)s::integer, concurrency), stopping = %(stopping)s "
    "WHERE owner = %(owner)s"
)
LIVE = (
    f"SELECT {WORKER_COLS} FROM jobq_workers "
    f"WHERE last_seen_at >= {NOW} - coalesce(%(max_age)s::float8, lease_seconds) "
    "ORDER BY host, pid, name"
)
LEASED = (
    "SELECT lease_owner, count(*) FROM jobq_jobs WHERE status = 'processing' GROUP BY lease_owner"
)


class PostgresWorkers:
    """The worker pools registered in one PostgreSQL database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def register_worker(self, worker: NewWorker, now: float) -> None:
        self._db.run(
            REGISTER,
            {
                "now": self._db.now(now),
                "forget": FORGET_WORKERS_AFTER,
                "owner": worker.owner,
                "host": worker.host,
                "pid": worker.pid,
                "name": worker.name,
                "queues": queues_json(worker.queues),
                "concurrency": worker.concurrency,
                "lease": float(worker.lease_seconds),
            },
        )

    def worker_seen(self, owner: str, now: float, concurrency: int | None, stopping: bool) -> bool:
        params = {
            "now": self._db.now(now),
            "concurrency": concurrency,
            "stopping": stopping,
            "owner": owner,
        }
        return self._db.rowcount(SEEN, params) == 1

    def unregister_worker(self, owner: str) -> bool:
        return self._db.rowcount("DELETE FROM jobq_workers WHERE owner = %s", (owner,)) == 1

    def live_workers(self, now: float, max_age: float | None) -> list[WorkerInfo]:
        rows = self._db.run(LIVE, {"now": self._db.now(now), "max_age": max_age})
        leased = {str(owner): int(count) for owner, count in self._db.run(LEASED)} if rows else {}
        return worker_infos(rows, leased)
