"""One claimed job in a worker pool, from its claim to its recorded outcome.

An :class:`Attempt` waits for a thread, runs, and may pass its task's timeout
or be given up when the pool stops; it knows what failure each of those means.

Rule: imports basic values and the worker's execute step; never the
pool or :mod:`jobq.queue`.
"""

from __future__ import annotations

import logging
from typing import Any

from ..context import JobContext
from ..errors import TaskTimeout, WorkerStopped
from ..job import Job, JobError
from .execute import Outcome, failure, new_context
from .host import QueueHost, RunnableTask
from .logs import job_fields

logger = logging.getLogger("jobq.worker")


class Attempt:
    """A claimed job in a pool: waiting for a thread, running, or just finished."""

    __slots__ = (
        "_context",
        "deadline",
        "given_up",
        "host",
        "isolated",
        "job",
        "lost",
        "started",
        "stuck_since",
        "thread",
        "timeout",
    )

    def __init__(self, host: QueueHost, job: Job) -> None:
        self.host = host
        self.job = job
        self._context: JobContext | None = None  # made when a thread takes it
        self.started: float | None = None
        self.deadline: float | None = None
        self.thread: str | None = None
        # Past its deadline, the failure to record once its thread returns (whatever
        # it returns); until then the pool keeps its lease and its slot.
        self.timeout: Outcome | None = None
        self.stuck_since: float | None = None  # the attempt is over; its thread runs on
        self.given_up = False  # its failure is recorded; the thread's outcome is ignored
        self.lost = False  # the lease is gone: nothing of it may be recorded
        self.isolated = False  # runs in a child process, which meets its timeout itself

    @property
    def context(self) -> JobContext:
        """What its task sees as ``jobq.current_job()``, made on first use (most
        attempts wait in the ready list, claimed by the busy dispatcher)."""
        context = self._context
        if context is None:
            context = self._context = new_context(self.host, self.job)
        return context

    @property
    def abandoned(self) -> bool:
        """True once nothing its thread returns may be recorded."""
        return self.given_up or self.lost

    def start(self, thread: str, now: float, task: RunnableTask | None) -> None:
        """Thread ``thread`` takes it at ``now``; the task's timeout sets its deadline."""
        self.started = now
        self.thread = thread
        if self._context is None:  # under the pool's lock, as the heartbeat's cancels are
            self._context = new_context(self.host, self.job)
        if task is not None:
            self.isolated = task.isolation == "process"
            if task.timeout is not None and not self.isolated:
                self.deadline = now + task.timeout

    def overdue(self, now: float) -> bool:
        """True if it runs past its deadline and is not yet marked timed out."""
        return not (
            self.abandoned
            or self.timeout is not None
            or self.deadline is None
            or now < self.deadline
        )

    def time_out(self, task: RunnableTask, pool_name: str) -> None:
        """Mark it timed out: its ``TaskTimeout`` failure is recorded once its thread
        returns, and the thread counts as stuck from the deadline on. Logs it once,
        at WARNING on ``jobq.worker``, with the job's fields in ``extra``."""
        assert task.timeout is not None
        self.timeout = failure(task, self.job, TaskTimeout(task.timeout, self.job.name))
        self.stuck_since = self.deadline
        job = self.job
        logger.warning(
            "jobq worker pool %s: job %d (%s) passed its timeout of %g s; its thread "
            "is stuck until the task returns",
            pool_name,
            job.id,
            job.name,
            task.timeout,
            extra={**job_fields(job, task.timeout), "worker_thread": self.thread},
        )

    def outcome(self, returned: Outcome) -> Outcome:
        """What to record once its thread returned ``returned``: that, or its timeout
        failure (with the time the thread really took)."""
        if self.timeout is None:
            return returned
        self.timeout.duration = returned.duration
        return self.timeout

    def give_up(self, pool_name: str, now: float) -> Outcome:
        """The pool stopped and its grace ran out: the outcome to record now (its
        timeout failure, else ``WorkerStopped``, run again if attempts remain).
        What its thread returns later is ignored."""
        self.given_up = True
        if self.stuck_since is None:
            self.stuck_since = now
        duration = now - self.started if self.started is not None else 0.0
        if self.timeout is not None:
            self.timeout.duration = duration
            return self.timeout
        stopped = WorkerStopped(
            f"the worker pool {pool_name} stopped before the job finished (its grace "
            "period ran out)"
        )
        error = JobError("WorkerStopped", str(stopped))
        delay = None if self.job.attempts >= self.job.max_attempts else 0.0
        return Outcome("failed", error=error, delay=delay, exception=stopped, duration=duration)

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
            "isolation": "process" if self.isolated else "thread",
            "timed_out": self.timeout is not None,
            "stuck": self.stuck_since is not None,
            "stuck_since": self.stuck_since,
        }
