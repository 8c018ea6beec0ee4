"""Batches in SQLite: the :class:`~jobq.storage.batches.BatchStore` part of
:class:`~jobq.storage.sqlite.SQLiteStorage`; its arguments were checked by
:class:`~jobq.storage.batches.CheckedBatches`.

The counting and the callbacks are the schema's triggers (``jobs_batch_counted``,
``batches_finished``): they run inside whichever write transaction ends a job, and
SQLite serialises writers, so the one that ends a sealed batch's last job is the
one that inserts its callbacks.

Rule: runs SQL only; imports this backend's database and inserts, the storage
contract and the errors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ...errors import BatchNotFound, BatchSealed
from ..base import NewJob
from ..batches import BATCH_COLS, BatchState, NewBatch, state_of
from .database import Database
from .driver import Connection
from .inserts import SQLiteInserts, payloads_params

# Processing jobs are few (workers times prefetch): counted off their own partial
# index (not off jobs_batch, which would read every job of the batch); pending ones
# are what is neither processing nor ended.
_SELECT = (
    f"SELECT {BATCH_COLS}, "
    "(SELECT count(*) FROM jobs INDEXED BY jobs_lease WHERE status = 'processing' "
    "AND batch_id = b.id), "
    "(SELECT group_concat(id) FROM jobs WHERE callback_of = b.id) FROM batches AS b"
)
_CREATE = (
    "INSERT INTO batches (created_at, updated_at, on_complete, on_success, on_failure, queue, "
    "priority, max_attempts, meta) VALUES (?1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
)
_OPEN = "SELECT sealed FROM batches WHERE id = ?"
_COUNT = "UPDATE batches SET total = total + ?1, updated_at = ?2 WHERE id = ?3"
_MARK = "UPDATE jobs SET batch_id = ?1 WHERE id IN (SELECT value FROM json_each(?2))"
_INSERT_EACH = (
    "INSERT INTO jobs (queue, name, payload, priority, status, max_attempts, run_at, "
    "unique_key, created_at, updated_at, expires_at, batch_id) SELECT ?1, ?2, value, ?3, "
    "'pending', ?4, ?5, NULL, ?6, ?6, ?8, ?9 FROM json_each(?7)"
)
_CANCEL = (
    "UPDATE jobs SET status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END, "
    "cancel_requested = CASE WHEN status = 'processing' THEN 1 ELSE cancel_requested END, "
    "finished_at = CASE WHEN status = 'pending' THEN ?1 ELSE finished_at END, updated_at = ?1 "
    "WHERE batch_id = ?2 AND status IN ('pending', 'processing')"
)
_SEAL = (
    "UPDATE batches SET sealed = 1, cancel_requested = max(cancel_requested, ?1), "
    "updated_at = ?2 WHERE id = ?3"
)
_LAST_FINISH = "SELECT max(finished_at) FROM batches"


class SQLiteBatches:
    """Creates, fills, seals and reads the batches of one SQLite file."""

    def __init__(self, db: Database, inserts: SQLiteInserts) -> None:
        self._db = db
        self._inserts = inserts

    def create(self, batch: NewBatch, now: float) -> BatchState:
        with self._db.write() as conn:
            conn.run(_CREATE, (now, *batch))
            batch_id = int(conn.query("SELECT last_insert_rowid()")[0][0])
            return self._read(conn, batch_id)  # type: ignore[return-value]

    def _open(self, conn: Connection, batch_id: int) -> None:
        rows = conn.query(_OPEN, (batch_id,))
        if not rows:
            raise BatchNotFound(batch_id)
        if rows[0][0]:
            raise BatchSealed(batch_id)

    def add(self, batch_id: int, jobs: Sequence[NewJob], now: float) -> list[int]:
        with self._db.write() as conn:
            self._open(conn, batch_id)
            if not jobs:
                return []
            ids = self._inserts.insert_jobs(conn, jobs, now)
            conn.run(_MARK, (batch_id, json.dumps(ids)))
            conn.run(_COUNT, (len(ids), now, batch_id))
        return ids

    def add_payloads(
        self, batch_id: int, template: NewJob, payloads: Sequence[str], now: float
    ) -> list[int]:
        params = (*payloads_params(template, payloads, now), batch_id)
        with self._db.write() as conn:
            self._open(conn, batch_id)
            if not payloads:
                return []
            conn.run(_INSERT_EACH, params)
            last = int(conn.query("SELECT last_insert_rowid()")[0][0])
            conn.run(_COUNT, (len(payloads), now, batch_id))
        return list(range(last - len(payloads) + 1, last + 1))

    def seal(self, batch_id: int, now: float, cancel: bool) -> BatchState | None:
        with self._db.write() as conn:
            if not conn.query(_OPEN, (batch_id,)):
                return None
            if cancel:
                conn.run(_CANCEL, (now, batch_id))
            conn.run(_SEAL, (int(cancel), now, batch_id))
            return self._read(conn, batch_id)

    def get(self, batch_id: int) -> BatchState | None:
        rows = self._db.query(f"{_SELECT} WHERE id = ?", (batch_id,))
        return _state(rows[0]) if rows else None

    def list(self, before_id: int | None, limit: int) -> list[BatchState]:
        if before_id is None:
            rows = self._db.query(f"{_SELECT} ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._db.query(
                f"{_SELECT} WHERE id < ? ORDER BY id DESC LIMIT ?", (before_id, limit)
            )
        return [_state(row) for row in rows]

    def last_finish(self) -> float | None:
        """When the latest batch finished (a seek), to tell whether callbacks
        were inserted since the last look."""
        value = self._db.query(_LAST_FINISH)[0][0]
        return None if value is None else float(value)

    def _read(self, conn: Connection, batch_id: int) -> BatchState | None:
        rows = conn.query(f"{_SELECT} WHERE id = ?", (batch_id,))
        return _state(rows[0]) if rows else None


def _state(row: Sequence[Any]) -> BatchState:
    total, completed, failed, cancelled = row[1:5]
    processing = int(row[15])
    return state_of(
        row[:15], total - completed - failed - cancelled - processing, processing, row[16]
    )
