"""Batches: "do this when all of those are done".

::

    @queue.task()
    def report(batch: jobq.BatchSummary) -> None:
        print(f"{batch['completed']:,} sent, {batch['failed']} failed")

    with queue.batch(on_complete=report, meta={"newsletter": 7}) as batch:
        batch.enqueue_many(send_email, [(address,) for address in addresses])
    # leaving the block seals the batch: once all its jobs have ended, `report`
    # is enqueued, exactly once, with the counts.

A :class:`Batch` is a handle on a batch stored in the database (its state is
read with :meth:`Batch.status`). Every worker of every process counts its jobs'
ends in the transaction that ends them, and the transaction that ends the last
job of a sealed batch enqueues its callback jobs: see :mod:`jobq.storage.batches`.

Rule: imports basic values, the tasks and the storage contract, never the queue
module itself (the queue passes itself in as a :class:`BatchHost`).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol

from . import expiry, signals, tracing_hooks, transactional
from .clock import EpochClock
from .errors import BatchNotFound
from .job import Job
from .storage.base import NewJob, Storage
from .storage.batches import BatchState, BatchSummary
from .tasks import BoundTask, JobOptions, NamedTask, Task, store_calls

__all__ = ["Batch", "BatchHost", "BatchState", "BatchSummary"]

TaskRef = Task[Any, Any] | BoundTask[Any, Any] | NamedTask | str
"""A task given to a batch: a Task, one with options (``task.options(...)``), or
anything naming a registered task."""


class BatchHost(Protocol):
    """The queue members a batch uses; :class:`~jobq.DurableQueue` has them."""

    storage: Storage
    clock: EpochClock
    inline: bool

    def get_task(self, task_or_name: Task[Any, Any] | NamedTask | str) -> Task[Any, Any]: ...

    def get(self, job_id: int) -> Job: ...

    def run_until_empty(self) -> int: ...

    def _check_size(self, task_name: str, payload: str) -> str: ...

    def _wake(self, queue_name: str) -> None: ...


class Batch:
    """A batch of jobs with callbacks, made by :meth:`jobq.DurableQueue.batch`.

    Add jobs with :meth:`enqueue` and :meth:`enqueue_many` while it is open;
    :meth:`seal` it when all are added (leaving its ``with`` block does). An open
    batch never fires, so a half-built batch cannot report early; its jobs run
    as they are added. Thread-safe: it holds no state but its id.
    """

    def __init__(self, queue: BatchHost, batch_id: int) -> None:
        self._queue = queue
        self.id = batch_id
        """The batch's id (also :attr:`jobq.Job.batch_id` of its jobs)."""

    # -- adding jobs ---------------------------------------------------------------

    def enqueue(self, task: TaskRef, /, *args: Any, **kwargs: Any) -> Job:
        """Add one job running ``task`` with these arguments; return it as stored.

        ``task`` may carry options (``send.options(priority=5)``); a ``unique_key``
        is refused (ValueError). Raises :class:`~jobq.BatchSealed` once the batch is
        sealed, :class:`~jobq.UnknownTask`, or TypeError for bad arguments; nothing
        is stored then.
        """
        bound, options = self._resolve(task)
        job = bound.job_for(args, kwargs, options)
        return self.enqueue_job(
            job,
            delay=options.start_delay,
            expires_in=options.expiry_after(bound.settings.expires_in),
        )

    def enqueue_many(
        self, task: TaskRef, calls: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> builtins.list[int]:
        """Add one job per call, all in one transaction (the bulk path: 10,000 in one
        statement); return their ids. Each call is a tuple of positional arguments
        or a dict of keyword arguments (as :meth:`jobq.Task.enqueue_many`). Every
        call is checked before anything is written. Raises as :meth:`enqueue`."""
        bound, options = self._resolve(task)
        return store_calls(bound, self, calls, options)

    def _resolve(self, task: TaskRef) -> tuple[Task[Any, Any], JobOptions]:
        if isinstance(task, BoundTask):
            return task.task, task.job_options
        return self._queue.get_task(task), JobOptions()

    # The JobStore protocol, so a task's own enqueue code stores into the batch.

    def enqueue_job(
        self, job: NewJob, *, delay: float | None = None, expires_in: float | None = None
    ) -> Job:
        """Store ``job`` (made by a task) in this batch; see :meth:`enqueue`. Emits
        ``job_enqueued``, as the queue's own enqueue does."""
        queue = self._queue
        queue._check_size(job.name, job.payload)
        now = queue.clock.now()
        job = expiry.timed(job, now, delay, expires_in)
        tracer = tracing_hooks.active
        if tracer is not None:
            return tracer.enqueue(job, lambda traced: self._store(traced, now))
        return self._store(job, now)

    def _store(self, job: NewJob, now: float) -> Job:
        queue = self._queue
        transactional.refuse_inside(queue, "a batch's job")
        (job_id,) = queue.storage.enqueue_in_batch(self.id, [job], now=now)
        stored = queue.get(job_id)
        if signals.job_enqueued.receivers:
            signals.emit(signals.job_enqueued, queue, job=stored)
        self._stored(job.queue)
        return stored

    def enqueue_jobs(
        self,
        template: NewJob,
        payloads: Iterable[str],
        *,
        delay: float | None = None,
        expires_in: float | None = None,
        limit_keys: Sequence[str | None] | None = None,
    ) -> builtins.list[int]:
        """Store one job like ``template`` per payload in this batch, in one
        transaction; see :meth:`enqueue_many`."""
        queue = self._queue
        checked = [queue._check_size(template.name, payload) for payload in payloads]
        now = queue.clock.now()
        template = expiry.timed(template, now, delay, expires_in)
        tracer = tracing_hooks.active
        if tracer is not None and checked:
            return tracer.enqueue_many(
                template, checked, lambda p: self._store_many(template, p, now, limit_keys)
            )
        return self._store_many(template, checked, now, limit_keys)

    def _store_many(
        self,
        template: NewJob,
        checked: builtins.list[str],
        now: float,
        limit_keys: Sequence[str | None] | None,
    ) -> builtins.list[int]:
        transactional.refuse_inside(self._queue, "a batch's jobs")
        storage = self._queue.storage
        if limit_keys is not None:
            jobs = [
                template._replace(payload=p, limit_key=k)
                for p, k in zip(checked, limit_keys, strict=True)
            ]
            ids = storage.enqueue_in_batch(self.id, jobs, now=now)
        else:
            ids = storage.enqueue_payloads_in_batch(self.id, template, checked, now=now)
        if ids:
            self._stored(template.queue)
        return ids

    def _stored(self, queue_name: str) -> None:
        self._queue._wake(queue_name)
        if self._queue.inline:
            self._queue.run_until_empty()

    # -- ending and reading ----------------------------------------------------------

    def seal(self) -> BatchState:
        """Close the batch to new jobs: from now on its callbacks fire once every job
        has ended (at once if all have, or if it has none). Idempotent. Returns
        its state."""
        state = self._queue.storage.seal_batch(self.id, now=self._queue.clock.now())
        self._after_change(state)
        return state

    def cancel(self) -> BatchState:
        """Seal the batch and cancel its jobs: pending ones end ``cancelled`` now,
        running ones are asked to stop (as :meth:`jobq.DurableQueue.cancel`). The
        callbacks still fire, once the running ones have ended, with the counts
        (cancelled ones included). Returns its state."""
        state = self._queue.storage.cancel_batch(self.id, now=self._queue.clock.now())
        self._after_change(state)
        return state

    def _after_change(self, state: BatchState) -> None:
        if state.callback_job_ids:
            self._queue._wake(state.queue)
            if self._queue.inline:
                self._queue.run_until_empty()

    def status(self) -> BatchState:
        """The batch as stored now: counts per status, sealed, ``finished_at``, the
        callback job ids and its meta. Raises :class:`~jobq.BatchNotFound`."""
        state = self._queue.storage.batch(self.id)
        if state is None:
            raise BatchNotFound(self.id)
        return state

    def __enter__(self) -> Batch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Seal the batch; if the block raised, cancel it instead (its jobs added so
        far are cancelled where they have not started), so a half-built batch never
        reports as if it were whole."""
        if exc is None:
            self.seal()
        else:
            self.cancel()

    def __repr__(self) -> str:
        return f"<Batch {self.id}>"
