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

from ..base import RescueResult
from ..workers import (
    DIED_ERROR,
    FORGET_WORKERS_AFTER,
    WORKER_COLS,
    NewWorker,
    WorkerInfo,
    queues_json,
    worker_infos,
)
from .connection import Database
from .history import rescue_statement
from .sql import NOW

REGISTER = (
    # The DELETE leaves the owner's own row to the upsert: one statement must not
    # change a row twice.
    "WITH gone AS (DELETE FROM jobq_workers "
    f"WHERE last_seen_at < {NOW} - %(forget)s AND owner <> %(owner)s) "
    f"INSERT INTO jobq_workers ({WORKER_COLS}) VALUES (%(owner)s, %(host)s, %(pid)s, "
    f"%(name)s, %(queues)s, %(concurrency)s, %(lease)s, {NOW}, {NOW}, false, %(boot_id)s, "
    "%(pid_namespace)s, %(process_start)s, '[]') "
    "ON CONFLICT (owner) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
    "name = excluded.name, queues = excluded.queues, concurrency = excluded.concurrency, "
    "lease_seconds = excluded.lease_seconds, started_at = excluded.started_at, "
    "last_seen_at = excluded.last_seen_at, stopping = false, boot_id = excluded.boot_id, "
    "pid_namespace = excluded.pid_namespace, process_start = excluded.process_start, "
    "threads = excluded.threads"
)
SEEN = (
    f"UPDATE jobq_workers SET last_seen_at = {NOW}, "
    "concurrency = coalesce(%(concurrency)s::integer, concurrency), stopping = %(stopping)s, "
    "threads = coalesce(%(threads)s::text, threads) WHERE owner = %(owner)s"
)
LIVE = (
    f"SELECT {WORKER_COLS} FROM jobq_workers "
    f"WHERE last_seen_at >= {NOW} - coalesce(%(max_age)s::float8, lease_seconds) "
    "ORDER BY host, pid, name"
)
HOST = (
    f"SELECT {WORKER_COLS} FROM jobq_workers WHERE host = %(host)s AND boot_id = %(boot_id)s "
    "AND pid_namespace = %(pid_namespace)s ORDER BY pid, name"
)
_REQUEUE = "(NOT cancel_requested AND attempts < max_attempts)"
# The row goes only if it is still the one registered at started_at; then the
# jobs still leased to that owner are released as RESCUE releases expired leases.
RELEASE_OWNER = (
    "WITH gone AS (DELETE FROM jobq_workers WHERE owner = %(owner)s "
    "AND started_at = %(started)s RETURNING owner), "
    "c AS MATERIALIZED (SELECT id FROM jobq_jobs WHERE status = 'processing' "
    "AND lease_owner = %(owner)s AND EXISTS (SELECT 1 FROM gone) FOR UPDATE) "
    "UPDATE jobq_jobs j SET status = CASE WHEN cancel_requested THEN 'cancelled' "
    f"WHEN {_REQUEUE} THEN 'pending' ELSE 'failed' END, "
    f"finished_at = CASE WHEN {_REQUEUE} THEN NULL ELSE {NOW} END, "
    f"error_type = '{DIED_ERROR}', error_message = 'worker process ' || j.lease_owner "
    "|| ' died during attempt ' || attempts || ' of ' || max_attempts, "
    f"error_traceback = NULL, lease_expires_at = NULL, updated_at = {NOW} "
    "FROM c WHERE j.id = c.id AND j.status = 'processing' AND j.lease_owner = %(owner)s "
    "RETURNING j.id, j.status"
)
_RELEASE_OWNER_RECORDED = rescue_statement(RELEASE_OWNER, "worker_died")
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
                "boot_id": worker.boot_id,
                "pid_namespace": worker.pid_namespace,
                "process_start": worker.process_start,
            },
        )

    def worker_seen(
        self, owner: str, now: float, concurrency: int | None, stopping: bool, threads: str | None
    ) -> bool:
        params = {
            "now": self._db.now(now),
            "concurrency": concurrency,
            "stopping": stopping,
            "owner": owner,
            "threads": threads,
        }
        return self._db.rowcount(SEEN, params) == 1

    def unregister_worker(self, owner: str) -> bool:
        return self._db.rowcount("DELETE FROM jobq_workers WHERE owner = %s", (owner,)) == 1

    def live_workers(self, now: float, max_age: float | None) -> list[WorkerInfo]:
        rows = self._db.run(LIVE, {"now": self._db.now(now), "max_age": max_age})
        leased = {str(owner): int(count) for owner, count in self._db.run(LEASED)} if rows else {}
        return worker_infos(rows, leased)

    def host_workers(self, host: str, boot_id: str, pid_namespace: int) -> list[WorkerInfo]:
        rows = self._db.run(
            HOST, {"host": host, "boot_id": boot_id, "pid_namespace": pid_namespace}
        )
        return worker_infos(rows, {})

    def release_owner(self, owner: str, started_at: float, now: float) -> RescueResult:
        params = {"now": self._db.now(now), "owner": owner, "started": started_at}
        outcome: dict[str, list[int]] = {"pending": [], "failed": [], "cancelled": []}
        for job_id, status in sorted(self._db.run(_RELEASE_OWNER_RECORDED, params)):
            outcome[status].append(job_id)
        return RescueResult(
            tuple(outcome["pending"]), tuple(outcome["failed"]), tuple(outcome["cancelled"])
        )
