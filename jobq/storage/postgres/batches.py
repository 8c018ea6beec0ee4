"""Batches in PostgreSQL: the :class:`~jobq.storage.batches.BatchStore` part of
:class:`~jobq.storage.postgres.PostgresStorage`; its arguments were checked by
:class:`~jobq.storage.batches.CheckedBatches`.

The counting and the callbacks are the schema's functions: a statement-level
trigger (``jobq_batches_counted``) sums each statement's status changes per
batch, locks those batches' rows in id order and updates their counts, then
``jobq_batches_finish`` stamps the sealed ones whose jobs have all ended and
inserts their callback jobs, in the transaction of the statement that ended the
last job. Row locks make it once: a second transaction waits for the first's
commit and then finds ``finished_at`` set.

Lock order everywhere: jobs rows before batch rows (cancelling a batch updates
its jobs before sealing its row), so enders and cancellers never deadlock.

Rule: runs SQL only; imports psycopg, this backend's connection and SQL text,
this backend's inserts, the storage contract and the errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import BatchNotFound, BatchSealed
from ..base import NewJob
from ..batches import BATCH_COLS, BatchState, NewBatch, state_of
from . import sql
from .connection import Database
from .inserts import insert_jobs, payloads_params

_NOW = sql.NOW
_SELECT = (
    f"SELECT {BATCH_COLS}, "
    "(SELECT count(*) FROM jobq_jobs WHERE batch_id = b.id AND status = 'pending'), "
    "(SELECT count(*) FROM jobq_jobs WHERE batch_id = b.id AND status = 'processing'), "
    "(SELECT string_agg(id::text, ',') FROM jobq_jobs WHERE callback_of = b.id) "
    "FROM jobq_batches AS b"
)
_CREATE = (
    "INSERT INTO jobq_batches (created_at, updated_at, on_complete, on_success, on_failure, "
    f"queue, priority, max_attempts, meta) VALUES ({_NOW}, {_NOW}, %(on_complete)s, "
    "%(on_success)s, %(on_failure)s, %(queue)s, %(priority)s, %(max_attempts)s, %(meta)s) "
    "RETURNING id"
)
_OPEN = "SELECT sealed FROM jobq_batches WHERE id = %s FOR UPDATE"
_COUNT = f"UPDATE jobq_batches SET total = total + %(n)s, updated_at = {_NOW} WHERE id = %(id)s"
_MARK = "UPDATE jobq_jobs SET batch_id = %s WHERE id = ANY(%s::bigint[])"
_INSERT_PAYLOADS = (
    f"WITH t AS MATERIALIZED (SELECT {_NOW} AS now), ins AS (INSERT INTO jobq_jobs "
    "(queue, name, payload, priority, status, max_attempts, run_at, created_at, updated_at, "
    "expires_at, batch_id) SELECT %(queue)s, %(name)s, p, %(priority)s, 'pending', "
    "%(max_attempts)s, coalesce(%(run_at)s::float8, t.now), t.now, t.now, "
    "%(expires_at)s::float8, %(id)s FROM t, unnest(%(payloads)s::text[]) WITH ORDINALITY "
    "AS v(p, i) ORDER BY i RETURNING id) SELECT array_agg(id ORDER BY id) FROM ins"
)
_CANCEL = (
    "UPDATE jobq_jobs SET status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status "
    "END, cancel_requested = (status = 'processing' OR cancel_requested), "
    f"finished_at = CASE WHEN status = 'pending' THEN {_NOW} ELSE finished_at END, "
    f"updated_at = {_NOW} WHERE batch_id = %(id)s AND status IN ('pending', 'processing')"
)
_SEAL = (
    "UPDATE jobq_batches SET sealed = true, cancel_requested = cancel_requested OR "
    f"%(cancel)s, updated_at = {_NOW} WHERE id = %(id)s RETURNING id"
)
_FINISH = "SELECT jobq_batches_finish(ARRAY[%s]::bigint[])"


class PostgresBatches:
    """Creates, fills, seals and reads the batches of one PostgreSQL database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, batch: NewBatch, now: float) -> BatchState:
        params = {**batch._asdict(), "now": self._db.now(now)}
        with self._db.conn() as conn, conn.transaction():
            row = conn.execute(_CREATE, params).fetchone()
            assert row is not None
            state = _read(conn, int(row[0]))
        assert state is not None
        return state

    def add(self, batch_id: int, jobs: Sequence[NewJob], now: float) -> list[int]:
        moment = self._db.now(now)
        with self._db.conn() as conn, conn.transaction():
            _check_open(conn, batch_id)
            if not jobs:
                return []
            ids = insert_jobs(conn, jobs, moment)
            conn.execute(_MARK, (batch_id, ids))
            conn.execute(_COUNT, {"n": len(ids), "now": moment, "id": batch_id})
            conn.execute(sql.NOTIFY, (sorted({job.queue for job in jobs}),))
        return ids

    def add_payloads(
        self, batch_id: int, template: NewJob, payloads: Sequence[str], now: float
    ) -> list[int]:
        moment = self._db.now(now)
        params = {**payloads_params(template, payloads, moment), "id": batch_id}
        with self._db.conn() as conn, conn.transaction():
            _check_open(conn, batch_id)
            if not payloads:
                return []
            row = conn.execute(_INSERT_PAYLOADS, params).fetchone()
            assert row is not None
            ids = list(row[0])
            conn.execute(_COUNT, {"n": len(ids), "now": moment, "id": batch_id})
            conn.execute(sql.NOTIFY, ([template.queue],))
        return ids

    def seal(self, batch_id: int, now: float, cancel: bool) -> BatchState | None:
        moment = self._db.now(now)
        with self._db.conn() as conn, conn.transaction():
            if cancel:  # jobs first, then the batch row: the order enders lock them in
                conn.execute(_CANCEL, {"now": moment, "id": batch_id})
            sealed = conn.execute(
                _SEAL, {"cancel": cancel, "now": moment, "id": batch_id}
            ).fetchone()
            if sealed is None:
                return None
            conn.execute(_FINISH, (batch_id,))
            return _read(conn, batch_id)

    def get(self, batch_id: int) -> BatchState | None:
        rows = self._db.run(f"{_SELECT} WHERE id = %s", (batch_id,))
        return _state(rows[0]) if rows else None

    def list(self, before_id: int | None, limit: int) -> list[BatchState]:
        if before_id is None:
            rows = self._db.run(f"{_SELECT} ORDER BY id DESC LIMIT %s", (limit,))
        else:
            rows = self._db.run(
                f"{_SELECT} WHERE id < %s ORDER BY id DESC LIMIT %s", (before_id, limit)
            )
        return [_state(row) for row in rows]


def _check_open(conn: Any, batch_id: int) -> None:
    row = conn.execute(_OPEN, (batch_id,)).fetchone()
    if row is None:
        raise BatchNotFound(batch_id)
    if row[0]:
        raise BatchSealed(batch_id)


def _read(conn: Any, batch_id: int) -> BatchState | None:
    row = conn.execute(f"{_SELECT} WHERE id = %s", (batch_id,)).fetchone()
    return None if row is None else _state(row)


def _state(row: Sequence[Any]) -> BatchState:
    return state_of(row[:15], int(row[15]), int(row[16]), row[17])
