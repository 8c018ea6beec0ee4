"""Reading and managing jobs and queues in PostgreSQL: cancel, retry, get, list,
stats (and the folding of count changes), purge, pause.

The :class:`~jobq.storage.parts.Admin` part of
:class:`~jobq.storage.postgres.PostgresStorage`, away from the workers' hot
path; its arguments were checked by :class:`~jobq.storage.checked.CheckedStorage`.

Rule: runs SQL only; imports this backend's connections and SQL text, the
shared rows and the storage contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import psycopg.errors

from .._rows import COLS, job_filters, job_row, job_rows, row_to_job, stats_from_rows
from ..base import MAX_PAUSED_QUEUES, Job, JobStatus, Stats, TooManyPausedQueues, UniqueKeyConflict
from . import sql
from .connection import Database
from .history import fold_throughput

_STATUS_VALUES = tuple(status.value for status in JobStatus)
"""Every status, each a column of :class:`QueueCounts` (iterating the enum per row
costs more than the query on a thousand queues)."""


class QueueCounts(NamedTuple):
    """A row of :data:`~jobq.storage.postgres.sql.STATS_QUEUES`."""

    queue: str
    pending: int
    processing: int
    completed: int
    failed: int
    cancelled: int
    rows: int  # rows of count changes summed
    scheduled: int | None
    oldest_due: float | None
    waiting: int | None


def fold_counts(db: Database) -> None:
    """Fold the rows of count changes into one per queue and status, unless another
    process is doing it; done by stats, rescue and purge so the sum stays short.
    The throughput counters are folded (and the old ones forgotten) with them."""
    with db.conn() as conn, conn.transaction():
        if conn.execute(sql.FOLD_IF_FREE, (sql.COUNTS_LOCK,)).fetchall()[0][0]:
            conn.execute(sql.FOLD_COUNTS, {"extra": sql.FOLD_AFTER_ROWS})
            fold_throughput(conn)


class PostgresAdmin:
    """Reads and manages the jobs and queues of one PostgreSQL database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def request_cancel(self, job_id: int, now: float) -> Job | None:
        rows = self._db.run(sql.CANCEL, {"now": self._db.now(now), "id": job_id})
        if not rows:
            rows = self._db.run(f"SELECT {COLS} FROM jobq_jobs WHERE id = %s", (job_id,))
        return row_to_job(job_row(rows[0])) if rows else None

    def retry(self, job_id: int, now: float, run_at: float | None) -> Job | None:
        try:
            rows = job_rows(
                self._db.run(sql.RETRY, {"run_at": run_at, "now": self._db.now(now), "id": job_id})
            )
        except psycopg.errors.UniqueViolation:
            name, key = self._db.run(
                "SELECT name, unique_key FROM jobq_jobs WHERE id = %s", (job_id,)
            )[0]
            holder = job_rows(self._db.run(sql.LIVE_BY_KEY, (name, key)))
            raise UniqueKeyConflict(key, holder[0].id if holder else 0) from None
        if not rows:
            return None
        self._db.run(sql.NOTIFY, ([rows[0].queue],))
        return row_to_job(rows[0])

    def get(self, job_id: int) -> Job | None:
        rows = self._db.run(f"SELECT {COLS} FROM jobq_jobs WHERE id = %s", (job_id,))
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
        terms, params = job_filters(status, queue, name, after_id, newest_first, "%s")
        where = f"WHERE {' AND '.join(terms)} " if terms else ""
        order = "DESC" if newest_first else "ASC"
        statement = f"SELECT {COLS} FROM jobq_jobs {where}ORDER BY id {order} LIMIT %s"
        return [row_to_job(row) for row in job_rows(self._db.run(statement, (*params, limit)))]

    def stats(self, now: float) -> Stats:
        params = {"now": self._db.now(now)}
        with self._db.conn() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot
            moment = float(conn.execute(sql.CURRENT_TIME, params).fetchall()[0][0])
            per_queue = [
                QueueCounts._make(row)
                for row in conn.execute(sql.STATS_QUEUES, {"now": moment}).fetchall()
            ]
            recent: dict[str, int] = dict(conn.execute(sql.STATS_RECENT, params).fetchall())
            paused = frozenset(q for (q,) in conn.execute("SELECT queue FROM jobq_paused_queues"))
        counts = [
            (row.queue, status, getattr(row, status))
            for row in per_queue
            for status in _STATUS_VALUES
            if getattr(row, status)
        ]
        due = [(row.queue, row.scheduled, row.oldest_due, row.waiting) for row in per_queue]
        if sum(row.rows for row in per_queue) - len(per_queue) > sql.FOLD_AFTER_ROWS:
            fold_counts(self._db)
        return stats_from_rows(counts, due, recent, paused, moment)

    def oldest_runnable_age(self, now: float) -> float:
        oldest, moment = self._db.run(sql.OLDEST_DUE, {"now": self._db.now(now)})[0]
        return 0.0 if oldest is None or oldest > moment else float(moment - oldest)

    def purge(self, older_than: float, statuses: Sequence[JobStatus], batch_size: int) -> int:
        total = 0
        for status in statuses:
            while True:
                deleted = self._db.rowcount(
                    sql.PURGE,
                    {"status": status.value, "older_than": float(older_than), "limit": batch_size},
                )
                total += deleted
                if deleted < batch_size:
                    break
        fold_counts(self._db)
        while True:
            gone = self._db.rowcount(
                sql.PURGE_BATCHES, {"older_than": float(older_than), "limit": batch_size}
            )
            if gone < batch_size:
                return total

    def pause(self, queue: str, now: float) -> None:
        params = {"queue": queue, "now": self._db.now(now), "limit": MAX_PAUSED_QUEUES}
        with self._db.conn() as conn, conn.transaction():
            conn.execute(sql.PAUSE_LOCK, (sql.PAUSED_LOCK,))
            if conn.execute(sql.PAUSE, params).rowcount == 1:
                return
            known = "SELECT 1 FROM jobq_paused_queues WHERE queue = %s"
            if not conn.execute(known, (queue,)).fetchall():
                raise TooManyPausedQueues(queue, MAX_PAUSED_QUEUES)

    def resume(self, queue: str) -> None:
        self._db.run("DELETE FROM jobq_paused_queues WHERE queue = %s", (queue,))
        self._db.run(sql.NOTIFY, ([queue],))

    def paused_queues(self) -> frozenset[str]:
        return frozenset(q for (q,) in self._db.run("SELECT queue FROM jobq_paused_queues"))
