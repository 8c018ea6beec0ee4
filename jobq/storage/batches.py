"""Batches: jobs that are one unit, with callback jobs when all of them have ended.

A batch is a row of its own (counts, whether it is sealed, its callbacks) and
its jobs carry its id (:attr:`jobq.Job.batch_id`). The database keeps the counts:
a trigger on the jobs table counts every status change into or out of an ended
status (completed, failed, cancelled) of a batch's job, whatever statement made
it (complete, fail, rescue, expiry, cancel, bulk actions, a retry going back to
pending), in that statement's transaction. When the counts say that every job
of a *sealed* batch has ended, the same transaction inserts the callback jobs
and stamps ``finished_at``; that happens once per batch, because the counts and
``finished_at`` are read and written under the batch row's write lock. Sealing
runs the same check, so a batch whose jobs all ended before it was sealed fires
when it is sealed.

The callback jobs run registered tasks and receive one argument, a
:class:`BatchSummary` dict (JSON), built by the database from the counts at that
moment:

- ``on_complete`` always;
- ``on_success`` when every job completed (none failed, none cancelled);
- ``on_failure`` when at least one job failed for good.

:class:`BatchStorage` is this piece of the storage contract;
:class:`~jobq.storage.checked_batches.CheckedBatches` checks its arguments once,
above every backend, and hands them to the backend's :class:`BatchStore` part,
which only runs SQL.

Rule: imports the storage records only; the storage contract imports this
module, not the reverse.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypedDict

from .records import NewJob

LIST_RANGE = (1, 1000)
"""Fewest and most batches :meth:`BatchStorage.list_batches` returns at once."""

CALLBACK_EVENTS = ("complete", "success", "failure")
"""The callbacks a batch may have, in the order their jobs are inserted."""


class BatchSummary(TypedDict):
    """What a batch's callback task receives (its one positional argument): plain
    JSON, so ``def report(batch: jobq.BatchSummary)`` or ``def report(batch: dict)``.

    ``event`` is which callback this is (``"complete"``, ``"success"`` or
    ``"failure"``); the counts are the batch's when its last job ended; ``meta`` is
    the dict given to :meth:`jobq.DurableQueue.batch`.
    """

    id: int
    event: str
    total: int
    completed: int
    failed: int
    cancelled: int
    meta: dict[str, Any]


class NewBatch(NamedTuple):
    """A batch to create.

    :param on_complete: task name enqueued when every job has ended; None for none.
    :param on_success: task name enqueued when every job completed; None for none.
    :param on_failure: task name enqueued when at least one job failed; None for none.
    :param queue: the queue of the callback jobs. Default ``"default"``.
    :param priority: the callback jobs' priority. Default 0.
    :param max_attempts: the callback jobs' attempts (>= 1). Default 3.
    :param meta: a JSON object (text) handed to the callbacks. Default ``"{}"``.
    """

    on_complete: str | None = None
    on_success: str | None = None
    on_failure: str | None = None
    queue: str = "default"
    priority: int = 0
    max_attempts: int = 3
    meta: str = "{}"


@dataclass(frozen=True)
class BatchState:
    """A batch as stored, a snapshot (see :meth:`jobq.DurableQueue.get_batch`).

    :param id: the batch's id.
    :param total: jobs added to it.
    :param pending: its jobs waiting to run (or to be retried).
    :param processing: its jobs running now.
    :param completed: its jobs that completed.
    :param failed: its jobs that failed for good (a retry brings one back).
    :param cancelled: its jobs that were cancelled or expired.
    :param sealed: no more jobs can be added; the callbacks fire once every job
        has ended (an open batch never fires).
    :param cancel_requested: :meth:`jobq.Batch.cancel` was called.
    :param created_at: when it was made (epoch seconds).
    :param updated_at: when its row last changed.
    :param finished_at: when its last job ended and its callbacks were enqueued,
        None while it runs.
    :param callback_job_ids: the callback jobs enqueued when it finished, in
        the order on_complete, on_success, on_failure (those that applied).
    :param on_complete: task name of the ``on_complete`` callback, or None.
    :param on_success: task name of the ``on_success`` callback, or None.
    :param on_failure: task name of the ``on_failure`` callback, or None.
    :param queue: the callback jobs' queue.
    :param meta: the JSON object (text) given when it was made.
    """

    id: int
    total: int
    pending: int
    processing: int
    completed: int
    failed: int
    cancelled: int
    sealed: bool
    cancel_requested: bool
    created_at: float
    updated_at: float
    finished_at: float | None
    callback_job_ids: tuple[int, ...]
    on_complete: str | None
    on_success: str | None
    on_failure: str | None
    queue: str
    meta: str

    @property
    def ended(self) -> int:
        """Jobs that have ended: completed + failed + cancelled."""
        return self.completed + self.failed + self.cancelled

    @property
    def finished(self) -> bool:
        """Whether every job ended and the callbacks were enqueued."""
        return self.finished_at is not None

    def decoded_meta(self) -> dict[str, Any]:
        """:attr:`meta` as a dict."""
        value: dict[str, Any] = json.loads(self.meta)
        return value

    def as_dict(self) -> dict[str, Any]:
        """The batch as plain JSON, as the monitor and ``jobq batch --json`` show it."""
        return {
            "id": self.id,
            "total": self.total,
            "pending": self.pending,
            "processing": self.processing,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "ended": self.ended,
            "sealed": self.sealed,
            "cancel_requested": self.cancel_requested,
            "finished": self.finished,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "finished_at": self.finished_at,
            "callback_job_ids": list(self.callback_job_ids),
            "on_complete": self.on_complete,
            "on_success": self.on_success,
            "on_failure": self.on_failure,
            "queue": self.queue,
            "meta": self.decoded_meta(),
        }


def state_of(
    row: Sequence[Any], pending: int, processing: int, callbacks: str | None
) -> BatchState:
    """A :class:`BatchState` from a row of :data:`BATCH_COLS`, the live counts and
    the callback job ids as comma-separated text (or None)."""
    (id, total, completed, failed, cancelled, sealed, cancel_requested) = row[:7]
    (created_at, updated_at, finished_at, on_complete, on_success, on_failure) = row[7:13]
    queue, meta = row[13:15]
    ids = tuple(int(part) for part in callbacks.split(",")) if callbacks else ()
    return BatchState(
        id=int(id),
        total=int(total),
        pending=pending,
        processing=processing,
        completed=int(completed),
        failed=int(failed),
        cancelled=int(cancelled),
        sealed=bool(sealed),
        cancel_requested=bool(cancel_requested),
        created_at=float(created_at),
        updated_at=float(updated_at),
        finished_at=None if finished_at is None else float(finished_at),
        callback_job_ids=tuple(sorted(ids)),
        on_complete=on_complete,
        on_success=on_success,
        on_failure=on_failure,
        queue=queue,
        meta=meta,
    )


BATCH_COLS = (
    "id, total, completed, failed, cancelled, sealed, cancel_requested, created_at, "
    "updated_at, finished_at, on_complete, on_success, on_failure, queue, meta"
)
"""The batch columns every backend selects, in the order :func:`state_of` reads."""


class BatchStorage(Protocol):
    """The storage contract's piece for batches (part of
    :class:`~jobq.storage.base.Storage`). Unknown batch ids: reads return None,
    writes raise :class:`~jobq.errors.BatchNotFound`."""

    def create_batch(self, batch: NewBatch, *, now: float) -> BatchState:
        """Store a new open (unsealed) batch without jobs; return it."""
        ...

    def enqueue_in_batch(self, batch_id: int, jobs: Sequence[NewJob], *, now: float) -> list[int]:
        """:meth:`~jobq.storage.base.Storage.enqueue_many` into an open batch, in one
        transaction with the batch's count; their ids in order. Jobs in a batch
        cannot have a ``unique_key`` (ValueError: a returned existing job would be
        counted twice or belong to two batches). Raises
        :class:`~jobq.errors.BatchSealed` (nothing stored) when it is sealed."""
        ...

    def enqueue_payloads_in_batch(
        self, batch_id: int, template: NewJob, payloads: Sequence[str], *, now: float
    ) -> list[int]:
        """:meth:`enqueue_in_batch` of jobs equal to ``template`` but for their
        payloads: the bulk path (10,000 jobs in one statement)."""
        ...

    def seal_batch(self, batch_id: int, *, now: float) -> BatchState:
        """Close the batch to new jobs; if every job has ended already (or it has
        none), enqueue its callbacks in the same transaction. Idempotent."""
        ...

    def cancel_batch(self, batch_id: int, *, now: float) -> BatchState:
        """Seal the batch and cancel its jobs: pending ones end ``cancelled`` at
        once, processing ones get a cancel request (as
        :meth:`~jobq.storage.base.Storage.request_cancel`). The callbacks fire
        when the running ones have ended."""
        ...

    def batch(self, batch_id: int) -> BatchState | None:
        """The batch with this id, counts read now, or None."""
        ...

    def list_batches(self, *, before_id: int | None = None, limit: int = 100) -> list[BatchState]:
        """Batches newest first, at most ``limit`` (1..1000); ``before_id`` pages."""
        ...


class BatchStore(Protocol):
    """What a backend provides for batches: SQL only, on checked values."""

    def create(self, batch: NewBatch, now: float) -> BatchState: ...

    def add(self, batch_id: int, jobs: Sequence[NewJob], now: float) -> list[int]: ...

    def add_payloads(
        self, batch_id: int, template: NewJob, payloads: Sequence[str], now: float
    ) -> list[int]: ...

    def seal(self, batch_id: int, now: float, cancel: bool) -> BatchState | None: ...

    def get(self, batch_id: int) -> BatchState | None: ...

    def list(self, before_id: int | None, limit: int) -> list[BatchState]: ...
