"""Batches on Redis: the :class:`~jobq.storage.batches.BatchStore` part of
:class:`~jobq.storage.redis.RedisStorage`; its arguments were checked by
:class:`~jobq.storage.checked_batches.CheckedBatches`.

The counting and the callbacks are Lua (:mod:`.lua_batches`), called from the
shared ``finish`` and ``drop`` helpers and the retry script: every script that
ends a job of a batch (complete, complete_many, fail, cancel, rescue, expiry,
the release of a dead pool's jobs, bulk actions), deletes one, or moves a failed
one back to pending counts it in the batch in the same run, and the run that
ends a sealed batch's last job inserts its callback jobs. Scripts run one at a
time on the server, so that happens once per batch, whichever process ends it.

Rule: runs scripts only; imports this backend's server and inserts, the storage
contract and the errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import BatchNotFound, BatchSealed
from ..base import NewJob
from ..batches import BatchState, NewBatch, state_of
from .inserts import job_fields
from .server import Server


class RedisBatches:
    """Creates, fills, seals and reads the batches of one Redis database."""

    def __init__(self, server: Server) -> None:
        self._server = server

    def create(self, batch: NewBatch, now: float) -> BatchState:
        names = (batch.on_complete, batch.on_success, batch.on_failure)
        flat = self._server.run(
            "batch_create",
            now,
            *("" if name is None else name for name in names),
            batch.queue,
            batch.priority,
            batch.max_attempts,
            batch.meta,
        )
        return _state(flat, 0)

    def add(self, batch_id: int, jobs: Sequence[NewJob], now: float) -> list[int]:
        fields = [job_fields(job) for job in jobs]
        per_job = len(fields[0]) if fields else 1
        answer = self._server.run(
            "batch_add", now, batch_id, per_job, *[arg for each in fields for arg in each]
        )
        if answer[0] == "missing":
            raise BatchNotFound(batch_id)
        if answer[0] == "sealed":
            raise BatchSealed(batch_id)
        return [int(job_id) for job_id in answer[1]]

    def add_payloads(
        self, batch_id: int, template: NewJob, payloads: Sequence[str], now: float
    ) -> list[int]:
        return self.add(batch_id, [template._replace(payload=p) for p in payloads], now)

    def seal(self, batch_id: int, now: float, cancel: bool) -> BatchState | None:
        found = self._server.run("batch_seal", now, batch_id, "1" if cancel else "0")
        return _state(*found[0]) if found else None

    def get(self, batch_id: int) -> BatchState | None:
        found = self._server.run("batch_read", None, "one", batch_id)
        return _state(*found[0]) if found else None

    def list(self, before_id: int | None, limit: int) -> list[BatchState]:
        before = "" if before_id is None else str(before_id)
        found = self._server.run("batch_read", None, "list", before, limit)
        return [_state(*item) for item in found]


def _state(flat: Sequence[Any], processing: Any) -> BatchState:
    h: dict[str, str] = dict(zip(flat[::2], flat[1::2], strict=True))
    total, completed = int(h["total"]), int(h["completed"])
    failed, cancelled = int(h["failed"]), int(h["cancelled"])
    busy = int(processing)
    row = (
        h["id"],
        total,
        completed,
        failed,
        cancelled,
        h["sealed"] == "1",
        h["cancel_requested"] == "1",
        h["created_at"],
        h["updated_at"],
        h.get("finished_at"),
        h.get("on_complete"),
        h.get("on_success"),
        h.get("on_failure"),
        h["queue"],
        h["meta"],
    )
    pending = total - completed - failed - cancelled - busy
    return state_of(row, pending, busy, h.get("callbacks") or None)
