"""Reading and administering jobs in SQLite: cancel, retry, get, list, stats,
purge, pause. :class:`~jobq.storage.sqlite.SQLiteStorage` adds the job life
cycle (enqueue, claim, leases) on top of this base class.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from ..validate import check_time
from ._checks import check_json, check_list_limit, check_purge, check_queues
from ._rows import COLS, FINAL, job_filters, row_to_job, schedule_state, stats_from_rows
from ._sqlite_db import Database, describe_error
from ._sqlite_driver import Connection, Row, retry_busy
from ._sqlite_sql import (
    CANCEL,
    LIVE_BY_KEY,
    OLDEST_DUE,
    RETRY,
    SCHEDULE_COLS,
    STATS_COUNTS,
    STATS_DUE,
    STATS_RECENT,
)
from .base import (
    MAX_PAUSED_QUEUES,
    Job,
    JobStatus,
    ScheduleState,
    Stats,
    StorageError,
    TooManyPausedQueues,
    UniqueKeyConflict,
)


def _check_schedule(name: str, spec: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a schedule name must be a non-empty str, got {name!r}")
    check_json("spec", spec)


class SQLiteBase:
    """The half of SQLiteStorage that is not on the workers' hot path."""

    _db: Database
    _returning: bool

    # -- management -------------------------------------------------------------------

    def request_cancel(self, job_id: int, *, now: float) -> Job | None:
        check_time("now", now)
        with self._db.write() as conn:
            rows = self._modify(conn, CANCEL, (now, job_id), COLS, job_id)
            if not rows:
                rows = conn.query(f"SELECT {COLS} FROM jobs WHERE id = ?", (job_id,))
        return row_to_job(rows[0]) if rows else None

    def retry(self, job_id: int, *, now: float, run_at: float | None = None) -> Job | None:
        check_time("now", now)
        if run_at is not None:
            check_time("run_at", run_at)
        params = (now if run_at is None else run_at, now, job_id)
        with self._db.write() as conn:
            try:
                rows = self._modify(conn, RETRY, params, COLS, job_id)
            except self._db.constraint_errors:
                name, key = conn.query("SELECT name, unique_key FROM jobs WHERE id = ?",
                                       (job_id,))[0]  # fmt: skip
                holder = conn.query(LIVE_BY_KEY, (name, key))[0][0]
                raise UniqueKeyConflict(key, holder) from None
        return row_to_job(rows[0]) if rows else None

    def get(self, job_id: int) -> Job | None:
        rows = self._query(f"SELECT {COLS} FROM jobs WHERE id = ?", (job_id,))
        return row_to_job(rows[0]) if rows else None

    def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        queue: str | None = None,
        name: str | None = None,
        after_id: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[Job]:
        check_list_limit(limit)
        terms, params = job_filters(status, queue, name, after_id, newest_first, "?")
        if status is not None and JobStatus(status) in FINAL:
            # Always true for final jobs; it lets SQLite read jobs_finished in id order.
            terms.append("finished_at IS NOT NULL")
        where = f"WHERE {' AND '.join(terms)} " if terms else ""
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {COLS} FROM jobs {where}ORDER BY id {order} LIMIT ?"
        return [row_to_job(row) for row in self._query(sql, (*params, limit))]

    def stats(self, *, now: float) -> Stats:
        check_time("now", now)
        with self._db.read() as conn:
            counts = conn.query(STATS_COUNTS)
            due = conn.query(STATS_DUE, (now,))
            recent: dict[str, int] = dict(conn.query(STATS_RECENT, (now,)))
            paused = frozenset(row[0] for row in conn.query("SELECT queue FROM paused_queues"))
        return stats_from_rows(counts, due, recent, paused, now)

    def oldest_runnable_age(self, *, now: float) -> float:
        check_time("now", now)
        oldest = self._query(OLDEST_DUE, ())[0][0]
        return 0.0 if oldest is None or oldest > now else now - oldest

    def purge(
        self,
        *,
        older_than: float,
        statuses: Collection[JobStatus] = (
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
        ),
        batch_size: int = 1000,
    ) -> int:
        chosen = check_purge(older_than, statuses, batch_size)
        total = 0
        for status in chosen:
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
        return total

    def pause(self, queue: str, *, now: float) -> None:
        check_queues([queue])
        check_time("now", now)
        with self._db.write() as conn:
            if conn.query("SELECT 1 FROM paused_queues WHERE queue = ?", (queue,)):
                return
            if conn.query("SELECT count(*) FROM paused_queues")[0][0] >= MAX_PAUSED_QUEUES:
                raise TooManyPausedQueues(queue, MAX_PAUSED_QUEUES)
            conn.run("INSERT INTO paused_queues (queue, paused_at) VALUES (?, ?)", (queue, now))

    def resume(self, queue: str) -> None:
        check_queues([queue])
        with self._db.write() as conn:
            conn.run("DELETE FROM paused_queues WHERE queue = ?", (queue,))

    def paused_queues(self) -> frozenset[str]:
        return frozenset(row[0] for row in self._query("SELECT queue FROM paused_queues", ()))


    # -- schedules --------------------------------------------------------------------

    def upsert_schedule(
        self, name: str, spec: str, next_fire_at: float, *, now: float
    ) -> ScheduleState:
        _check_schedule(name, spec)
        check_time("next_fire_at", next_fire_at)
        check_time("now", now)
        with self._db.write() as conn:
            conn.run(
                "INSERT INTO schedules (name, spec, next_fire_at, updated_at) "
                "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name) DO UPDATE SET spec = ?2, "
                "next_fire_at = ?3, updated_at = ?4 WHERE spec <> ?2",
                (name, spec, next_fire_at, now),
            )
            rows = conn.query(f"SELECT {SCHEDULE_COLS} FROM schedules WHERE name = ?", (name,))
        return schedule_state(rows[0])

    def list_schedules(self) -> list[ScheduleState]:
        rows = self._query(f"SELECT {SCHEDULE_COLS} FROM schedules ORDER BY name", ())
        return [schedule_state(row) for row in rows]

    def set_schedule_paused(
        self, name: str, paused: bool, *, now: float, next_fire_at: float | None = None
    ) -> ScheduleState | None:
        check_time("now", now)
        if next_fire_at is not None:
            check_time("next_fire_at", next_fire_at)
        with self._db.write() as conn:
            conn.run(
                "UPDATE schedules SET paused = ?1, next_fire_at = coalesce(?2, next_fire_at), "
                "updated_at = ?3 WHERE name = ?4",
                (int(bool(paused)), next_fire_at, now, name),
            )
            rows = conn.query(f"SELECT {SCHEDULE_COLS} FROM schedules WHERE name = ?", (name,))
        return schedule_state(rows[0]) if rows else None

    # -- helpers ----------------------------------------------------------------------

    def _modify(
        self, conn: Connection, sql: str, params: Sequence[Any], returning: str, job_id: int
    ) -> list[Row]:
        """Run an UPDATE of at most the row ``job_id`` and return its ``returning``
        columns if it changed (RETURNING where SQLite has it, else a SELECT after)."""
        if self._returning:
            return conn.query(f"{sql} RETURNING {returning}", params)
        if conn.run(sql, params) == 0:
            return []
        return conn.query(f"SELECT {returning} FROM jobs WHERE id = ?", (job_id,))

    def _query(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """A read outside any transaction (one statement sees one snapshot)."""
        conn = self._db.conn()
        try:
            return retry_busy(self._db.driver, lambda: conn.query(sql, params))
        except self._db.errors as exc:
            raise StorageError(describe_error(self._db.path, exc)) from exc
