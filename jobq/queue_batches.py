"""The batch half of :class:`~jobq.DurableQueue`'s interface: make a batch, find
one again, list them (see :mod:`jobq.batches`).

:class:`QueueBatches` is a base class of ``DurableQueue`` and works through the
few queue members :class:`~jobq.batches.BatchHost` declares. Rule: it imports
basic values, the codec, the tasks and the storage contract, never the queue
module itself.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from . import codec, transactional
from .batches import Batch, BatchHost
from .errors import BatchNotFound
from .storage.batches import BatchState, NewBatch
from .tasks import NamedTask, Task

Callback = Task[Any, Any] | NamedTask | str
"""A batch callback: a registered task, or its name."""


class QueueBatches:
    """Batch methods of :class:`~jobq.DurableQueue` (see each one)."""

    def batch(
        self: BatchHost,
        *,
        on_complete: Callback | None = None,
        on_success: Callback | None = None,
        on_failure: Callback | None = None,
        meta: Mapping[str, Any] | None = None,
        queue: str | None = None,
    ) -> Batch:
        """Make a new, open batch and return it: add jobs with ``batch.enqueue`` and
        ``batch.enqueue_many``, then seal it (leave its ``with`` block, or call
        ``batch.seal()``). Once it is sealed and every one of its jobs has ended
        (completed, failed for good, or cancelled), the callbacks are enqueued,
        exactly once, in the transaction that ended the last job:

        - ``on_complete`` always;
        - ``on_success`` only if every job completed;
        - ``on_failure`` only if at least one job failed for good.

        Each callback is a registered task called with one argument, a
        :class:`~jobq.BatchSummary` dict: ``{"id", "event", "total", "completed",
        "failed", "cancelled", "meta"}``. A job that fails and is retried is not
        ended until its last attempt; retrying a failed job (``queue.retry``)
        before the batch finished counts it again as pending. Callbacks that are
        all None make a batch that only counts.

        :param meta: a JSON-able dict handed to the callbacks (e.g. the newsletter
            id). Default ``{}``.
        :param queue: the queue of the callback jobs; default the queue of the
            first callback task given. Their priority and attempts are that task's.

        Raises :class:`~jobq.UnknownTask` for a callback not registered here,
        :class:`~jobq.PayloadError` for a ``meta`` JSON cannot hold.
        """
        tasks = {
            kind: None if given is None else self.get_task(given)
            for kind, given in (
                ("on_complete", on_complete),
                ("on_success", on_success),
                ("on_failure", on_failure),
            )
        }
        first = next((task for task in tasks.values() if task is not None), None)
        if meta is not None and not isinstance(meta, Mapping):
            raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
        new = NewBatch(
            **{kind: None if task is None else task.name for kind, task in tasks.items()},
            queue=queue or (first.queue if first is not None else "default"),
            priority=first.priority if first is not None else 0,
            max_attempts=first.max_attempts if first is not None else 3,
            meta=codec.encode(dict(meta or {}), name="meta"),
        )
        transactional.refuse_inside(self, "a batch")
        state = self.storage.create_batch(new, now=self.clock.now())
        return Batch(self, state.id)

    def get_batch(self: BatchHost, batch_id: int) -> Batch:
        """The batch with this id, to read (``.status()``), add to while open, seal
        or cancel. Raises :class:`~jobq.BatchNotFound`."""
        if self.storage.batch(batch_id) is None:
            raise BatchNotFound(batch_id)
        return Batch(self, batch_id)

    def list_batches(
        self: BatchHost, *, before_id: int | None = None, limit: int = 100
    ) -> builtins.list[BatchState]:
        """Batches newest first, at most ``limit`` (1 to 1,000); pass the last id of
        a page as ``before_id`` for the next."""
        return self.storage.list_batches(before_id=before_id, limit=limit)
