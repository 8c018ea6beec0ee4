"""The looking-and-controlling half of :class:`~jobq.DurableQueue`'s interface: get
and list jobs, their attempts and timeline, cancel and retry them, stats,
throughput, live workers, purge, and pause or resume queues.

:class:`QueueControl` is a base class of ``DurableQueue`` and works through the few
queue members it declares. Rule: it imports basic values and the storage contract,
never the queue module itself.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection

from .clock import EpochClock
from .errors import JobNotFound
from .job import Job, JobStatus
from .storage.base import Stats, Storage
from .storage.history import AttemptRecord, JobHistory, ThroughputPoint, TimelineEvent, timeline
from .storage.job_logs import JobLogLine
from .storage.workers import WorkerInfo, WorkerRegistry
from .tasks import DEFAULT_QUEUE


class QueueControl:
    """Reading and steering the jobs of a queue's storage (see the module docstring)."""

    storage: Storage
    clock: EpochClock

    def _wake(self, queue_name: str) -> None:
        """Tell this process's pools that jobs of ``queue_name`` may be runnable."""

    def get(self, job_id: int) -> Job:
        """The job with this id, as stored now. Raises :class:`JobNotFound`."""
        job = self.storage.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def job_logs(self, job_id: int) -> builtins.list[JobLogLine]:
        """The lines the job's tasks kept with ``jobq.current_job().log()``, oldest
        first: its newest 100, each with its ``number`` (counting dropped lines
        too), ``attempt``, ``logged_at`` (epoch seconds) and ``message``.
        Raises :class:`JobNotFound`."""
        lines = self.storage.job_logs(job_id)
        if not lines and self.storage.get(job_id) is None:
            raise JobNotFound(job_id)
        return lines

    def attempts(self, job_id: int) -> builtins.list[AttemptRecord]:
        """The job's attempts that ended without completing, oldest first: each with
        its number, the worker that ran it (``host:pid:name``), when it started and
        ended, its ``outcome`` (``"failed"``, ``"lease_expired"``, ``"cancelled"``)
        and its error with the traceback. Empty for a storage without history.
        Raises :class:`JobNotFound`.

        :param job_id: the job's id.
        """
        job = self.get(job_id)
        if not isinstance(self.storage, JobHistory):
            return []
        return self.storage.job_attempts(job.id)

    def timeline(self, job_id: int) -> builtins.list[TimelineEvent]:
        """What happened to the job, oldest first: ``"enqueued"``, then per attempt
        ``"claimed"`` and how it ended (``"failed"``, ``"lease_expired"``,
        ``"cancelled"``, ``"completed"``), and ``"retry_scheduled"`` while it waits
        for its next attempt. Raises :class:`JobNotFound`.

        :param job_id: the job's id.
        """
        job = self.get(job_id)
        attempts = self.storage.job_attempts(job.id) if isinstance(self.storage, JobHistory) else []
        return timeline(job, attempts)

    def throughput(
        self, *, last: float = 3600.0, bucket: float = 60, queue: str | None = None
    ) -> builtins.list[ThroughputPoint]:
        """Jobs that ended completed and failed (for good, not the attempts that
        were retried) per minute or per hour, counted as they ended (no scan of
        the jobs): one :class:`~jobq.ThroughputPoint` for every bucket of the last
        ``last`` seconds up to now (the queue's clock), zeros included, oldest
        first. Counters are kept for 2 days.

        :param last: seconds back from now, > 0; default 3600 (an hour).
        :param bucket: 60 (per minute, the default) or 3600 (per hour).
        :param queue: one queue's jobs only; None (default) for every queue.
        """
        if not (isinstance(last, (int, float)) and 0 < last < float("inf")):
            raise ValueError(f"last must be a number of seconds > 0, got {last!r}")
        if bucket not in (60, 3600):
            raise ValueError(f"bucket must be 60 or 3600 seconds, got {bucket!r}")
        if not isinstance(self.storage, JobHistory):
            return []
        now = self.clock.now()
        return self.storage.throughput(
            since=now - last, until=now, bucket_seconds=int(bucket), queue=queue
        )

    def list(
        self,
        *,
        status: JobStatus | str | None = None,
        name: str | None = None,
        queue: str | None = None,
        limit: int = 100,
        after: int | None = None,
        newest_first: bool = False,
    ) -> list[Job]:
        """Jobs matching every filter given, at most ``limit`` (1 to 10,000), by id.

        For the next page pass the last job's id as ``after``.
        """
        return self.storage.list_jobs(
            status=None if status is None else JobStatus(status),
            queue=queue,
            name=name,
            after_id=after,
            limit=limit,
            newest_first=newest_first,
        )

    def cancel(self, job_id: int) -> Job:
        """Cancel a job: a pending one at once; a processing one is asked to stop
        (``jobq.current_job().cancel_requested``) and ends cancelled. A finished
        job is left as it is. Returns the job. Raises :class:`JobNotFound`."""
        job = self.storage.request_cancel(job_id, now=self.clock.now())
        if job is None:
            raise JobNotFound(job_id)
        return job

    def retry(self, job_id: int, *, delay: float = 0.0) -> Job:
        """Run a failed or cancelled job again, with its full attempts, after ``delay``
        seconds. Raises :class:`JobNotFound`, or ValueError if the job is not failed
        or cancelled."""
        now = self.clock.now()
        job = self.storage.retry(job_id, now=now, run_at=now + delay)
        if job is None:
            current = self.get(job_id)
            raise ValueError(
                f"job {job_id} is {current.status.value}; only failed or cancelled jobs "
                "can be retried"
            )
        self._wake(job.queue)
        return job

    def stats(self) -> Stats:
        """Counts per queue and status, jobs scheduled for later, age of the oldest
        runnable job, and jobs finished in the last minute."""
        return self.storage.stats(now=self.clock.now())

    def oldest_runnable_age(self) -> float:
        """Seconds the oldest runnable job of a queue that is not paused has waited
        since it became due; 0.0 when none is waiting. Cheap (index seeks only),
        for health checks polled often."""
        return self.storage.oldest_runnable_age(now=self.clock.now())

    def workers(self, *, max_age: float | None = None) -> builtins.list[WorkerInfo]:
        """The worker pools live now, in every process on every host that uses this
        database, by host, pid and name, each with the jobs leased to it.

        A pool registers as it starts, is seen at each heartbeat (every third of
        its lease) and unregisters when it stops; a killed one drops out once
        ``max_age`` seconds passed unseen (default: its own lease period, after
        which its jobs are rescued too). Empty for a storage without the registry.
        """
        if not isinstance(self.storage, WorkerRegistry):
            return []
        return self.storage.live_workers(now=self.clock.now(), max_age=max_age)

    def purge(
        self,
        *,
        older_than: float,
        statuses: Collection[JobStatus | str] = ("completed", "failed", "cancelled"),
    ) -> int:
        """Delete finished jobs that finished more than ``older_than`` seconds ago;
        returns how many. Only final statuses may be given."""
        if not older_than >= 0:
            raise ValueError(f"older_than must be at least 0 seconds, got {older_than!r}")
        return self.storage.purge(
            older_than=self.clock.now() - older_than,
            statuses=[JobStatus(status) for status in statuses],
        )

    def pause(self, queue_name: str = DEFAULT_QUEUE) -> None:
        """Stop workers everywhere from starting jobs of this queue (running ones finish).

        Raises :class:`~jobq.errors.TooManyPausedQueues` when
        :data:`~jobq.storage.base.MAX_PAUSED_QUEUES` other queues are paused already."""
        self.storage.pause(queue_name, now=self.clock.now())

    def resume(self, queue_name: str = DEFAULT_QUEUE) -> None:
        """Let workers start jobs of this queue again."""
        self.storage.resume(queue_name)
        self._wake(queue_name)
