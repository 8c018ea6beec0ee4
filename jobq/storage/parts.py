"""What a backend provides: four parts that only run SQL.

:class:`~jobq.storage.checked.CheckedStorage` checks the arguments of every
:class:`~jobq.storage.base.Storage` call once, for every backend, then hands
them to one of these parts. A part therefore receives valid values only, with
the trivial cases already answered (no queues, no jobs, no leases), and
decides nothing but how its database stores the change. Each backend builds
one object per part:

- :class:`Inserts`: jobs in (enqueue, bulk enqueue);
- :class:`Leases`: a job's life under a lease (claim, renew, progress,
  complete, fail, release, cancel at the worker, rescue);
- :class:`Admin`: reading and managing jobs and queues (get, list, stats,
  cancel, retry, purge, pause);
- :class:`Schedules`: recurring schedules, stored and fired.

Rule: imports only the storage contract (:mod:`jobq.storage.base`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from .base import (
    Completion,
    Enqueued,
    Job,
    JobError,
    JobStatus,
    NewJob,
    RenewResult,
    RescueResult,
    ScheduleState,
    Stats,
    TaskLimit,
)


class Inserts(Protocol):
    """Storing new jobs (:meth:`~jobq.storage.base.Storage.enqueue` and friends)."""

    def enqueue(self, job: NewJob, now: float) -> Enqueued:
        """Store ``job``, or return the job its unique key's policy keeps (or replaces)."""
        ...

    def enqueue_many(self, jobs: Sequence[NewJob], now: float) -> list[int]:
        """Store ``jobs`` (at least one) in one transaction; their ids in order."""
        ...

    def enqueue_payloads(self, template: NewJob, payloads: Sequence[str], now: float) -> list[int]:
        """Store ``template`` once per payload (at least one; the template has no
        unique key); their ids in order."""
        ...


class Leases(Protocol):
    """A job's life under a worker's lease, from claim to its outcome."""

    def claim(
        self,
        queues: Sequence[str],
        owner: str,
        now: float,
        lease_seconds: float,
        limit: int,
        limits: Mapping[str, TaskLimit] | None,
        limited_at_most: int | None,
    ) -> list[Job]:
        """Lease up to ``limit`` runnable jobs of ``queues`` (distinct, at least one)."""
        ...

    def has_runnable(self, queues: Sequence[str], now: float) -> bool:
        """Whether one of ``queues`` (distinct, at least one) has a runnable job."""
        ...

    def renew(
        self, leases: Collection[tuple[int, str]], now: float, lease_seconds: float
    ) -> RenewResult:
        """Extend the ``leases`` (at least one) held."""
        ...

    def set_progress(self, job_id: int, lease_token: str, progress: str, now: float) -> bool:
        """Record progress for a held job."""
        ...

    def complete(self, job_id: int, lease_token: str, now: float, result: str | None) -> bool:
        """Mark a held job completed."""
        ...

    def complete_many(self, completions: Sequence[Completion], now: float) -> list[bool]:
        """Complete held jobs (at least one) in one transaction."""
        ...

    def fail(
        self, job_id: int, lease_token: str, error: JobError, now: float, retry_at: float | None
    ) -> JobStatus | None:
        """Record an error for a held job and release it."""
        ...

    def release(
        self, job_id: int, lease_token: str, now: float, run_at: float | None
    ) -> JobStatus | None:
        """Hand a held job back without counting the attempt."""
        ...

    def finish_cancelled(self, job_id: int, lease_token: str, now: float) -> bool:
        """End a held job as cancelled."""
        ...

    def rescue_expired(self, now: float, limit: int) -> RescueResult:
        """Release up to ``limit`` jobs whose lease expired."""
        ...

    def expire_jobs(self, now: float, limit: int) -> list[int]:
        """End up to ``limit`` pending jobs past their ``expires_at`` as cancelled."""
        ...


class Admin(Protocol):
    """Reading and managing jobs and queues, away from the workers' hot path."""

    def request_cancel(self, job_id: int, now: float) -> Job | None:
        """Cancel a job, or ask its worker to stop it."""
        ...

    def retry(self, job_id: int, now: float, run_at: float | None) -> Job | None:
        """Move a failed or cancelled job back to pending."""
        ...

    def get(self, job_id: int) -> Job | None:
        """The job with this id (a positive 64-bit integer), or None."""
        ...

    def list_jobs(
        self,
        status: JobStatus | None,
        queue: str | None,
        name: str | None,
        after_id: int | None,
        limit: int,
        newest_first: bool,
    ) -> list[Job]:
        """Jobs matching every filter given, by id."""
        ...

    def stats(self, now: float) -> Stats:
        """Counts per queue and status, and recent outcomes."""
        ...

    def oldest_runnable_age(self, now: float) -> float:
        """Seconds since the oldest runnable job of an unpaused queue became due."""
        ...

    def purge(self, older_than: float, statuses: Sequence[JobStatus], batch_size: int) -> int:
        """Delete jobs of ``statuses`` (final ones) that finished before ``older_than``."""
        ...

    def pause(self, queue: str, now: float) -> None:
        """Stop claims from ``queue``."""
        ...

    def resume(self, queue: str) -> None:
        """Let claims from ``queue`` start again."""
        ...

    def paused_queues(self) -> frozenset[str]:
        """Names of the paused queues."""
        ...


class Schedules(Protocol):
    """Recurring schedules as stored, shared by every process."""

    def upsert_schedule(
        self, name: str, spec: str, next_fire_at: float, now: float
    ) -> ScheduleState:
        """Store the schedule if new or if its spec changed; return it."""
        ...

    def fire_schedule(
        self, name: str, fire_at: float, next_fire_at: float, jobs: Sequence[NewJob], now: float
    ) -> list[int] | None:
        """Advance the schedule and enqueue ``jobs`` at once, if still due."""
        ...

    def list_schedules(self) -> list[ScheduleState]:
        """Every stored schedule, by name."""
        ...

    def set_schedule_paused(
        self, name: str, paused: bool, now: float, next_fire_at: float | None
    ) -> ScheduleState | None:
        """Pause or resume a schedule."""
        ...
