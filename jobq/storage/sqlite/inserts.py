"""Jobs into SQLite: one at a time, many in one transaction, and the bulk path.

The :class:`~jobq.storage.parts.Inserts` part of
:class:`~jobq.storage.sqlite.SQLiteStorage`; its arguments were checked by
:class:`~jobq.storage.checked.CheckedStorage`.

Rule: runs SQL only; imports this backend's database and SQL text, the shared
rows and the storage contract.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from .._rows import COLS, job_row, row_to_job
from ..base import Enqueued, NewJob, StorageError
from .database import Database, describe_error
from .driver import Connection, retry_busy
from .duplicates import resolve
from .group_commit import GroupCommit
from .sql import (
    BULK_SIZES,
    INSERT,
    INSERT_EACH,
    INSERT_RETURNING,
    INSERTED,
    bulk_insert,
    insert_params,
)


@functools.cache
def _bulk_returning(rows: int) -> str:
    return f"{bulk_insert(rows)} RETURNING {COLS}"


class SQLiteInserts:
    """Stores new jobs in one SQLite file."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.group: GroupCommit[tuple[NewJob, float], Enqueued] = GroupCommit(self._enqueue_batch)
        """Concurrent :meth:`enqueue` calls of this process share one transaction."""

    def enqueue(self, job: NewJob, now: float) -> Enqueued:
        # Returns once the transaction holding the job has committed (shared with
        # the threads enqueueing at the same moment, see .group_commit).
        return self.group.submit((job, now))

    def _enqueue_batch(
        self, batch: Sequence[tuple[NewJob, float]]
    ) -> list[Enqueued | BaseException]:
        if len(batch) == 1:  # a lone caller: any error is the transaction's and its own
            job, now = batch[0]
            if job.unique_key is None and self._db.returning:
                return [self._insert_alone(job, now)]
            with self._db.write() as conn:
                return [self._insert_one(conn, job, now)]
        with self._db.write() as conn:
            outcomes: list[Enqueued | BaseException | None] = [None] * len(batch)
            plain = [i for i, (job, _) in enumerate(batch) if job.unique_key is None]
            for start in range(0, len(plain) if self._db.returning else 0, 100):
                chunk = plain[start : start + 100]
                if len(chunk) > 1:
                    self._insert_plain(conn, batch, chunk, outcomes)
            for index, (job, now) in enumerate(batch):
                if outcomes[index] is not None:
                    continue
                try:
                    outcomes[index] = self._insert_one(conn, job, now)
                except Exception as exc:
                    # SQLite undid the failed statement alone; an error that ended
                    # the transaction (disk full, I/O) fails the whole batch.
                    if not conn.raw.in_transaction:
                        raise
                    outcomes[index] = self._own_error(exc)
            return [outcome for outcome in outcomes if outcome is not None]

    def _insert_plain(
        self,
        conn: Connection,
        batch: Sequence[tuple[NewJob, float]],
        chunk: list[int],
        outcomes: list[Enqueued | BaseException | None],
    ) -> None:
        """Jobs without a unique key in one multi-row INSERT; if it is refused, they
        are left to be inserted one by one (so that only the refused one fails)."""
        values: list[Any] = []
        for index in chunk:
            values += _bulk_values(*batch[index])
        try:
            rows = conn.query(_bulk_returning(len(chunk)), values)
        except Exception:
            if not conn.raw.in_transaction:
                raise
            return
        # We hold the write lock and ids come from AUTOINCREMENT: the rows got
        # consecutive ids in the order of VALUES (RETURNING's order is unspecified).
        for index, row in zip(chunk, sorted(rows), strict=True):
            outcomes[index] = Enqueued(row_to_job(job_row(row)), True)

    def _insert_alone(self, job: NewJob, now: float) -> Enqueued:
        # One statement is its own transaction: it takes the write lock when it
        # starts (waiting for it like BEGIN IMMEDIATE does, busy timeout included)
        # and commits when it ends, without the BEGIN and COMMIT round trips.
        db = self._db
        conn = db.conn()
        params = insert_params(job, now)
        try:
            rows = retry_busy(db.driver, lambda: conn.query(INSERT_RETURNING, params))
        except db.errors as exc:
            if db.driver.is_busy(exc):  # worded as Database.write() words it
                raise StorageError(f"could not take the write lock on {db.path!r}: {exc}") from exc
            raise StorageError(describe_error(db.path, exc)) from exc
        return Enqueued(row_to_job(job_row(rows[0])), True)

    def _own_error(self, exc: Exception) -> Exception:
        if isinstance(exc, self._db.errors):
            error = StorageError(describe_error(self._db.path, exc))
            error.__cause__ = exc
            return error
        return exc

    def insert_one(self, conn: Connection, job: NewJob, now: float) -> Enqueued:
        """Insert ``job`` in the caller's write transaction, or return the job its
        unique key's policy keeps (or replaces)."""
        return self._insert_one(conn, job, now)

    def _insert_one(self, conn: Connection, job: NewJob, now: float) -> Enqueued:
        if job.unique_key is not None and (held := resolve(conn, job, now)) is not None:
            return held
        params = insert_params(job, now)
        if self._db.returning:
            rows = conn.query(INSERT_RETURNING, params)
        else:
            conn.run(INSERT, params)
            rows = conn.query(INSERTED)
        return Enqueued(row_to_job(job_row(rows[0])), True)

    def enqueue_many(self, jobs: Sequence[NewJob], now: float) -> list[int]:
        with self._db.write() as conn:
            return self.insert_jobs(conn, jobs, now)

    def enqueue_payloads(self, template: NewJob, payloads: Sequence[str], now: float) -> list[int]:
        with self._db.write() as conn:
            return self.insert_payloads(conn, template, payloads, now)

    def insert_payloads(
        self, conn: Connection, template: NewJob, payloads: Sequence[str], now: float
    ) -> list[int]:
        """:meth:`enqueue_payloads` in the caller's write transaction."""
        conn.run(INSERT_EACH, payloads_params(template, payloads, now))
        last = int(conn.query("SELECT last_insert_rowid()")[0][0])
        return list(range(last - len(payloads) + 1, last + 1))

    def insert_jobs(self, conn: Connection, jobs: Sequence[NewJob], now: float) -> list[int]:
        """Insert ``jobs`` in the caller's write transaction; their ids in order (a
        live job's id where one holds the unique key, replaced by the entry with
        ``on_duplicate="replace"`` while it is pending)."""
        ids: list[int] = []
        run: list[NewJob] = []  # consecutive jobs without a unique key
        for job in jobs:
            if job.unique_key is None:
                run.append(job)
                continue
            if run:
                ids.extend(self._insert_run(conn, run, now))
                run = []
            held = resolve(conn, job, now)
            if held is not None:
                ids.append(held.job.id)
            else:
                conn.run(INSERT, insert_params(job, now))
                ids.append(conn.query("SELECT last_insert_rowid()")[0][0])
        if run:
            ids.extend(self._insert_run(conn, run, now))
        return ids

    def _insert_run(self, conn: Connection, jobs: list[NewJob], now: float) -> range:
        # Multi-row INSERTs: far fewer statement executions than executemany.
        # Chunk sizes come from a short fixed list so few statements are cached.
        position = 0
        while position < len(jobs):
            size = next(s for s in BULK_SIZES if s <= len(jobs) - position)
            chunk = jobs[position : position + size]
            position += size
            values: list[Any] = []
            for j in chunk:
                values += _bulk_values(j, now)
            conn.run(bulk_insert(size), values)
        # We hold the write lock and ids come from AUTOINCREMENT, so the rows
        # just inserted got consecutive ids ending at last_insert_rowid().
        last = int(conn.query("SELECT last_insert_rowid()")[0][0])
        return range(last - len(jobs) + 1, last + 1)


def _bulk_values(job: NewJob, now: float) -> tuple[Any, ...]:
    """One job's values in the order of the multi-row INSERT's columns."""
    run_at = now if job.run_at is None else job.run_at
    return (
        job.queue,
        job.name,
        job.payload,
        job.priority,
        job.max_attempts,
        run_at,
        now,
        job.expires_at,
        job.limit_key,
    )


def payloads_params(template: NewJob, payloads: Sequence[str], now: float) -> tuple[Any, ...]:
    """The parameters of :data:`INSERT_EACH`: ``template``'s fields, its run time
    (``now`` unless it has one), and ``payloads`` as one JSON array."""
    run_at = now if template.run_at is None else template.run_at
    return (
        template.queue,
        template.name,
        template.priority,
        template.max_attempts,
        run_at,
        now,
        json.dumps(payloads, ensure_ascii=False),
        template.expires_at,
    )
