"""What the worker needs from the queue it runs jobs for: a narrow protocol.

:class:`~jobq.DurableQueue` satisfies :class:`QueueHost` structurally; the
worker names only this protocol, so that it sits below the queue.

Rule: imports basic values, storage and schedules; never :mod:`jobq.queue`, nor
:mod:`jobq.tasks` (a task is seen as a :class:`RunnableTask`).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

from ..backoff import Backoff
from ..clock import Clock
from ..context import TaskQueue
from ..job import Job, JobStatus
from ..retry_rules import RetryRules
from ..schedules import Schedule
from ..storage.base import Storage, TaskLimit


class Leased(Protocol):
    """Anything holding a claimed job: a pool's attempt, or a job's context."""

    @property
    def job(self) -> Job:
        """The job as claimed, with its lease token."""
        ...


class RunnableTask(Protocol):
    """What the worker needs of a registered task (:class:`jobq.Task`)."""

    @property
    def fn(self) -> Callable[..., Any]:
        """The function a job calls."""
        ...

    @property
    def backoff(self) -> Backoff:
        """Seconds before the attempt after a failed one, by attempt number."""
        ...

    @property
    def timeout(self) -> float | None:
        """Seconds an attempt may run before it fails with ``TaskTimeout``."""
        ...

    @property
    def retry_rules(self) -> RetryRules | None:
        """Its ``retry_on`` and ``discard_on``, or None."""
        ...

    @property
    def isolation(self) -> str:
        """``"thread"`` or ``"process"``: where its attempts run."""
        ...


class RetentionPolicy(Protocol):
    """How long finished jobs are kept (:class:`jobq.Retention`)."""

    @property
    def interval(self) -> float:
        """Seconds between deletions of expired jobs."""
        ...

    def ages(self) -> Mapping[JobStatus, float]:
        """Maximum age in seconds per final status, for the statuses that expire."""
        ...


class QueueHost(TaskQueue, Protocol):
    """The queue a worker runs jobs for, as the worker sees it."""

    @property
    def storage(self) -> Storage:
        """Where the jobs live."""
        ...

    @property
    def clock(self) -> Clock:
        """Wall clock of stored times (leases, run-at times, retention)."""
        ...

    @property
    def tasks(self) -> Mapping[str, RunnableTask]:
        """The registered tasks, by name."""
        ...

    @property
    def task_limits(self) -> Mapping[str, TaskLimit]:
        """The limits of the registered tasks that have any, by task name."""
        ...

    @property
    def declared_schedules(self) -> Mapping[str, Schedule]:
        """Schedules declared in this process, which its workers fire."""
        ...

    @property
    def lease_seconds(self) -> float:
        """How long a claimed job stays leased without a heartbeat."""
        ...

    @property
    def poll_interval(self) -> float:
        """Seconds between an idle pool's looks for jobs enqueued elsewhere."""
        ...

    @property
    def retention(self) -> RetentionPolicy:
        """How long finished jobs are kept."""
        ...

    @property
    def unknown_tasks(self) -> Literal["fail", "wait"]:
        """What to do with a job whose task is not registered here."""
        ...

    @property
    def around_job(self) -> Callable[[Callable[[], Any]], Any] | None:
        """Wraps every job's call (e.g. in an application context), or None."""
        ...

    def queue_names(self) -> builtins.list[str]:
        """Queues the registered tasks use (the default queues of a pool)."""
        ...

    def fire_due_schedules(self, now: float | None = None) -> builtins.list[int]:
        """Enqueue the jobs of the declared schedules that are due; return their ids."""
        ...
