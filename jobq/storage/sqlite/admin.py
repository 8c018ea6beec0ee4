"""Reading and managing jobs and queues in SQLite: cancel, retry, get, list,
stats, purge, pause.

The :class:`~jobq.storage.parts.Admin` part of
:class:`~jobq.storage.sqlite.SQLiteStorage`, away from the workers' hot path;
its arguments were checked by :class:`~jobq.storage.checked.CheckedStorage`.

Rule: runs SQL only; imports this backend's database and SQL text, the shared
rows and the storage contract.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._rows import COLS, FINAL, job_filters, job_row, job_rows, row_to_job, stats_from_rows
from ..base import MAX_PAUSED_QUEUES, Job, JobStatus, Stats, TooManyPausedQueues, UniqueKeyConflict
from .database import Database
from .sql import CANCEL, LIVE_BY_KEY, OLDEST_DUE, RETRY, STATS_COUNTS, STATS_DUE, STATS_RECENT

PURGE_BATCHES = (
    "DELETE FROM batches WHERE id IN (SELECT id FROM batches INDEXED BY batches_finished "
    "WHERE finished_at < ?1 AND NOT EXISTS (SELECT 1 FROM jobs WHERE batch_id = batches.id) "
    "AND NOT EXISTS (SELECT 1 FROM jobs WHERE callback_of = batches.id) LIMIT ?2)"
)
"""Finished batches with no job left, the oldest first (:meth:`Storage.purge`)."""


class SQLiteAdmin:
    """Reads and manages the jobs and queues of one SQLite file."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def request_cancel(self, job_id: int, now: float) -> Job | None:
        with self._db.write() as conn:
            rows = self._db.modify(conn, CANCEL, (now, job_id), COLS, job_id)
            if not rows:
                rows = conn.query(f"SELECT {COLS} FROM jobs WHERE id = ?", (job_id,))
        return row_to_job(job_row(rows[0])) if rows else None

    def retry(self, job_id: int, now: float, run_at: float | None) -> Job | None:
        params = (now if run_at is None else run_at, now, job_id)
        with self._db.write() as conn:
            try:
                rows = self._db.modify(conn, RETRY, params, COLS, job_id)
            except self._db.constraint_errors:
                name, key = conn.query("SELECT name, unique_key FROM jobs WHERE id = ?", (job_id,))[
                    0
                ]
                holder = job_row(conn.query(LIVE_BY_KEY, (name, key))[0])
                raise UniqueKeyConflict(key, holder.id) from None
        return row_to_job(job_row(rows[0])) if rows else None

    def get(self, job_id: int) -> Job | None:
        rows = self._db.query(f"SELECT {COLS} FROM jobs WHERE id = ?", (job_id,))
        return row_to_job(job_row(rows[0])) if rows else None

    def list_jobs(
        self,
        status: JobStatus | None,
        queue: str | None,
        name: str | None,
        after_id: int | None,
        limit: int,
        newest_first: bool,
    ) -> list[Job]:
        terms, params = job_filters(status, queue, name, after_id, newest_first, "?")
        if status is not None and JobStatus(status) in FINAL:
            # Always true for final jobs; it lets SQLite read jobs_finished in id order.
            terms.append("finished_at IS NOT NULL")
        where = f"WHERE {' AND '.join(terms)} " if terms else ""
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {COLS} FROM jobs {where}ORDER BY id {order} LIMIT ?"
        return [row_to_job(row) for row in job_rows(self._db.query(sql, (*params, limit)))]

    def stats(self, now: float) -> Stats:
        with self._db.read() as conn:
            counts = conn.query(STATS_COUNTS)
            due = conn.query(STATS_DUE, (now,))
            recent: dict[str, int] = dict(conn.query(STATS_RECENT, (now,)))
            paused = frozenset(queue for (queue,) in conn.query("SELECT queue FROM paused_queues"))
        return stats_from_rows(counts, due, recent, paused, now)

    def oldest_runnable_age(self, now: float) -> float:
        oldest = self._db.query(OLDEST_DUE)[0][0]
        return 0.0 if oldest is None or oldest > now else now - oldest

    def purge(self, older_than: float, statuses: Sequence[JobStatus], batch_size: int) -> int:
        total = 0
        for status in statuses:
            while True:
                with self._db.write() as conn:
                    deleted = conn.run(
                        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs INDEXED BY "
                        "jobs_finished WHERE status = ?1 AND finished_at < ?2 LIMIT ?3)",
                        (status.value, older_than, batch_size),
                    )
                total += deleted
                if deleted < batch_size:
                    break
        if total:
            with self._db.write() as conn:  # counts of queues and statuses now empty
                conn.run("DELETE FROM job_counts WHERE jobs = 0")
        while True:
            with self._db.write() as conn:
                gone = conn.run(PURGE_BATCHES, (older_than, batch_size))
            if gone < batch_size:
                return total

    def pause(self, queue: str, now: float) -> None:
        with self._db.write() as conn:
            if conn.query("SELECT 1 FROM paused_queues WHERE queue = ?", (queue,)):
                return
            if conn.query("SELECT count(*) FROM paused_queues")[0][0] >= MAX_PAUSED_QUEUES:
                raise TooManyPausedQueues(queue, MAX_PAUSED_QUEUES)
            conn.run("INSERT INTO paused_queues (queue, paused_at) VALUES (?, ?)", (queue, now))

    def resume(self, queue: str) -> None:
        with self._db.write() as conn:
            conn.run("DELETE FROM paused_queues WHERE queue = ?", (queue,))

    def paused_queues(self) -> frozenset[str]:
        return frozenset(queue for (queue,) in self._db.query("SELECT queue FROM paused_queues"))
