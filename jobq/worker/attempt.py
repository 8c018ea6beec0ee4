"""One claimed job in a worker pool, from its claim to its recorded outcome.

An :class:`Attempt` waits for a thread, runs, and may pass its task's timeout
or be given up when the pool stops; it knows what failure each of those means.

Rule: imports basic values and the worker's execute step; never the
pool or :mod:`jobq.queue`.
"""

from __future__ import annotations

from typing import Any

from ..errors import TaskTimeout
from ..job import Job, JobError
from .execute import Outcome, failure, new_context
from .failures import error_of
from .host import QueueHost, RunnableTask


class Attempt:
    """A claimed job in a pool: waiting for a thread, running, or just finished."""

    __slots__ = (
        "context",
        "deadline",
        "given_up",
        "job",
        "lost",
        "started",
        "stuck_since",
        "thread",
        "timeout",
    )

    def __init__(self, host: QueueHost, job: Job) -> None:
        self.job = job
        self.context = new_context(host, job)
        self.started: float | None = None
        self.deadline: float | None = None
        self.thread: str | None = None
        # Past its deadline, the failure to record once its thread returns (whatever
        # it returns); until then the pool keeps its lease and its slot.
        self.timeout: Outcome | None = None
        self.stuck_since: float | None = None  # the attempt is over; its thread runs on
        self.given_up = False  # its failure is recorded; the thread's outcome is ignored
        self.lost = False  # the lease is gone: nothing of it may be recorded

    @property
    def abandoned(self) -> bool:
        """True once nothing its thread returns may be recorded."""
        return self.given_up or self.lost

    def start(self, thread: str, now: float, task: RunnableTask | None) -> None:
        """Thread ``thread`` takes it at ``now``; the task's timeout sets its deadline."""
        self.started = now
        self.thread = thread
        if task is not None and task.timeout is not None:
            self.deadline = now + task.timeout

    def overdue(self, now: float) -> bool:
        """True if it runs past its deadline and is not yet marked timed out."""
        return not (
            self.abandoned
            or self.timeout is not None
            or self.deadline is None
            or now < self.deadline
        )

    def time_out(self, task: RunnableTask) -> None:
        """Mark it timed out: its ``TaskTimeout`` failure is recorded once its thread
        returns, and the thread counts as stuck from the deadline on."""
        assert task.timeout is not None
        self.timeout = failure(task, self.job, error_of(TaskTimeout(task.timeout, self.job.name)))
        self.stuck_since = self.deadline

    def give_up(self, pool_name: str, now: float) -> Outcome:
        """The pool stopped and its grace ran out: the outcome to record now (its
        timeout failure, else ``WorkerStopped``, run again if attempts remain).
        What its thread returns later is ignored."""
        self.given_up = True
        if self.stuck_since is None:
            self.stuck_since = now
        error = JobError(
            "WorkerStopped",
            f"the worker pool {pool_name} stopped before the job finished (its grace "
            "period ran out)",
        )
        delay = None if self.job.attempts >= self.job.max_attempts else 0.0
        return self.timeout or Outcome("failed", error=error, delay=delay)

    def describe(self) -> dict[str, Any]:
        """What its thread is doing, as ``WorkerPool.running()`` shows it."""
        job = self.job
        return {
            "id": job.id,
            "name": job.name,
            "queue": job.queue,
            "attempt": job.attempts,
            "started_at": self.started,
            "thread": self.thread,
            "timed_out": self.timeout is not None,
            "stuck": self.stuck_since is not None,
            "stuck_since": self.stuck_since,
        }
