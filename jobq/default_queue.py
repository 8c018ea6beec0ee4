"""The process's default queue, for code that enqueues without holding a queue object.

``jobq.configure(queue)`` sets it (the Flask extension does this for you);
``jobq.submit(task_or_name, *args, **kwargs)`` enqueues on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from .errors import NotConfigured
from .job import Job
from .queue import DurableQueue
from .tasks import NamedTask, Task

P = ParamSpec("P")
R = TypeVar("R")

QueueOrOpener = DurableQueue | Callable[[], DurableQueue]
"""What :func:`configure` takes: a queue, or a function that returns one when first needed."""

_default: QueueOrOpener | None = None


def configure(queue: QueueOrOpener | None) -> QueueOrOpener | None:
    """Make ``queue`` the default queue of this process (None forgets it); return what
    it replaces (None if there was none), to put it back later.

    ``queue`` may also be a function returning the queue, called each time the
    default is needed (the Flask extension passes one, so that its queue opens
    only when something uses it).
    """
    global _default
    before, _default = _default, queue
    return before


def default_queue() -> DurableQueue:
    """The queue set by :func:`configure`. Raises :class:`~jobq.NotConfigured`."""
    default = _default
    if default is None:
        raise NotConfigured(
            "no default queue is configured: call jobq.configure(jobq.DurableQueue(path)) "
            "at startup, or use the Flask extension (JobQ(app)), before jobq.submit()"
        )
    return default if isinstance(default, DurableQueue) else default()


def submit(task_or_name: Task[P, R] | NamedTask | str, /, *args: Any, **kwargs: Any) -> Job:
    """Enqueue a job on the default queue and return it, from any plain function.

    ``task_or_name`` is a registered task, its name, or anything with the task's
    ``name`` (such as ``flask_jobq.handlers.send_email``). Raises
    :class:`~jobq.NotConfigured` when no default queue is set, and as
    :meth:`DurableQueue.enqueue` does otherwise.
    """
    return default_queue().enqueue(task_or_name, *args, **kwargs)
