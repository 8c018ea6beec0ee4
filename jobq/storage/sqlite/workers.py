"""The registry of live worker pools in SQLite: the
:class:`~jobq.storage.workers.WorkerRows` part of
:class:`~jobq.storage.sqlite.SQLiteStorage`; its arguments were checked by
:class:`~jobq.storage.workers.CheckedWorkers`.

Rule: runs SQL only; imports this backend's database and the storage contract.
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
from .database import Database
from .history import count_ended, record_attempt

# Processing rows only (the partial index jobs_lease holds them): a handful per pool.
LEASED = "SELECT lease_owner, count(*) FROM jobs WHERE status = 'processing' GROUP BY lease_owner"

_REQUEUE = "(NOT cancel_requested AND attempts < max_attempts)"
# One job of a dead pool, as RESCUE releases an expired lease; ?3 is the dead owner.
RELEASE_DIED = (
    "UPDATE jobs SET status = CASE WHEN cancel_requested THEN 'cancelled' "
    f"WHEN {_REQUEUE} THEN 'pending' ELSE 'failed' END, "
    f"finished_at = CASE WHEN {_REQUEUE} THEN NULL ELSE ?1 END, "
    f"error_type = '{DIED_ERROR}', error_message = 'worker process ' || lease_owner "
    "|| ' died during attempt ' || attempts || ' of ' || max_attempts, "
    "error_traceback = NULL, lease_expires_at = NULL, updated_at = ?1 "
    "WHERE id = ?2 AND status = 'processing' AND lease_owner = ?3"
)


class SQLiteWorkers:
    """The worker pools registered in one SQLite file."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def register_worker(self, worker: NewWorker, now: float) -> None:
        with self._db.write() as conn:
            conn.run("DELETE FROM workers WHERE last_seen_at < ?", (now - FORGET_WORKERS_AFTER,))
            conn.run(
                f"INSERT OR REPLACE INTO workers ({WORKER_COLS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, '[]')",
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
                    worker.boot_id,
                    worker.pid_namespace,
                    worker.process_start,
                ),
            )

    def worker_seen(
        self, owner: str, now: float, concurrency: int | None, stopping: bool, threads: str | None
    ) -> bool:
        with self._db.write() as conn:
            changed = conn.run(
                "UPDATE workers SET last_seen_at = ?1, "
                "concurrency = coalesce(?2, concurrency), stopping = ?3, "
                "threads = coalesce(?5, threads) WHERE owner = ?4",
                (now, concurrency, int(stopping), owner, threads),
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

    def host_workers(self, host: str, boot_id: str, pid_namespace: int) -> list[WorkerInfo]:
        with self._db.read() as conn:
            rows = conn.query(
                f"SELECT {WORKER_COLS} FROM workers WHERE host = ? AND boot_id = ? "
                "AND pid_namespace = ? ORDER BY pid, name",
                (host, boot_id, pid_namespace),
            )
        return worker_infos(rows, {})

    def release_owner(self, owner: str, started_at: float, now: float) -> RescueResult:
        outcome: dict[str, list[int]] = {"pending": [], "failed": [], "cancelled": []}
        with self._db.write() as conn:
            gone = conn.run(
                "DELETE FROM workers WHERE owner = ? AND started_at = ?", (owner, started_at)
            )
            held = (
                conn.query(
                    "SELECT id FROM jobs INDEXED BY jobs_lease WHERE status = 'processing' "
                    "AND lease_owner = ? ORDER BY id",
                    (owner,),
                )
                if gone
                else []
            )
            for (job_id,) in held:
                for (status,) in self._db.modify(
                    conn, RELEASE_DIED, (now, job_id, owner), "status", job_id
                ):
                    outcome[status].append(job_id)
                    record_attempt(conn, job_id, now, "worker_died")
            count_ended(conn, outcome["failed"], now, failed=True)
        return RescueResult(
            tuple(outcome["pending"]), tuple(outcome["failed"]), tuple(outcome["cancelled"])
        )
