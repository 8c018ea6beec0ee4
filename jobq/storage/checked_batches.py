"""The batch methods of :class:`~jobq.storage.checked.CheckedStorage`: each
argument checked once, above every backend, before the backend's
:class:`~jobq.storage.batches.BatchStore` part runs its SQL.

Rule: imports the storage contract, the checks and the errors; never a backend.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ..errors import BatchNotFound
from ..validate import check_int_range, check_time, is_int
from ._checks import check_new
from .batches import LIST_RANGE, BatchState, BatchStore, NewBatch
from .records import NewJob


def _is_id(value: object) -> bool:
    return is_int(value) and 0 < value < 2**63  # type: ignore[operator]


def check_batch(batch: NewBatch) -> None:
    """Reject a bad :class:`NewBatch`, naming the field."""
    for field in ("on_complete", "on_success", "on_failure"):
        name = getattr(batch, field)
        if name is not None and (type(name) is not str or not name or "\x00" in name):
            raise ValueError(f"{field} must be a task name or None, got {name!r}")
    check_new(NewJob("batch", "", batch.queue, batch.priority, batch.max_attempts), None)
    if type(batch.meta) is not str:
        raise TypeError(f"meta must be JSON text (str), got {type(batch.meta).__name__}")
    try:
        decoded = json.loads(batch.meta)
    except ValueError:
        raise ValueError(f"meta must be a JSON object, got {batch.meta[:80]!r}") from None
    if not isinstance(decoded, dict) or "\x00" in batch.meta:
        raise ValueError(f"meta must be a JSON object, got {batch.meta[:80]!r}")


def _check_in_batch(job: NewJob, index: int | None) -> None:
    check_new(job, index)
    if job.unique_key is not None:
        where = "" if index is None else f" (jobs[{index}])"
        raise ValueError(
            f"jobs in a batch cannot have a unique_key, got {job.unique_key!r}{where}: "
            "a batch counts each of its jobs once"
        )
    if job.depends_on:
        where = "" if index is None else f" (jobs[{index}])"
        raise ValueError(
            f"jobs in a batch cannot have depends_on{where}: a batch's jobs start "
            "as soon as they are stored; use a chain, or enqueue the dependent job "
            "from the batch's on_complete callback"
        )


MAX_BATCH_ID = 2**63 - 1
"""The largest id a backend stores (a signed 64-bit integer)."""


class CheckedBatches:
    """The batch methods of :class:`~jobq.storage.checked.CheckedStorage`:
    arguments checked here, SQL run by the backend's :attr:`_batches` part."""

    _batches: BatchStore

    def create_batch(self, batch: NewBatch, *, now: float) -> BatchState:
        check_time("now", now)
        if not isinstance(batch, NewBatch):
            raise TypeError(f"batch must be a NewBatch, got {batch!r}")
        check_batch(batch)
        return self._batches.create(batch, now)

    def enqueue_in_batch(self, batch_id: int, jobs: Sequence[NewJob], *, now: float) -> list[int]:
        check_time("now", now)
        for index, job in enumerate(jobs):
            _check_in_batch(job, index)
        if not _is_id(batch_id):
            raise BatchNotFound(batch_id)
        return self._batches.add(batch_id, jobs, now)

    def enqueue_payloads_in_batch(
        self, batch_id: int, template: NewJob, payloads: Sequence[str], *, now: float
    ) -> list[int]:
        check_time("now", now)
        _check_in_batch(template._replace(payload=""), None)
        for index, payload in enumerate(payloads):
            if type(payload) is not str or "\x00" in payload:
                check_new(template._replace(payload=payload), index)
        if not _is_id(batch_id):
            raise BatchNotFound(batch_id)
        if template.limit_key is not None:
            return self._batches.add(
                batch_id, [template._replace(payload=p) for p in payloads], now
            )
        return self._batches.add_payloads(batch_id, template, payloads, now)

    def seal_batch(self, batch_id: int, *, now: float) -> BatchState:
        check_time("now", now)
        state = self._batches.seal(batch_id, now, False) if _is_id(batch_id) else None
        if state is None:
            raise BatchNotFound(batch_id)
        return state

    def cancel_batch(self, batch_id: int, *, now: float) -> BatchState:
        check_time("now", now)
        state = self._batches.seal(batch_id, now, True) if _is_id(batch_id) else None
        if state is None:
            raise BatchNotFound(batch_id)
        return state

    def batch(self, batch_id: int) -> BatchState | None:
        return self._batches.get(batch_id) if _is_id(batch_id) else None

    def list_batches(self, *, before_id: int | None = None, limit: int = 100) -> list[BatchState]:
        check_int_range("limit", limit, LIST_RANGE)
        if before_id is not None and not is_int(before_id):
            raise TypeError(f"before_id must be an integer or None, got {before_id!r}")
        if before_id is not None and before_id > MAX_BATCH_ID:
            before_id = None  # every batch id is below it
        return self._batches.list(before_id, limit)
