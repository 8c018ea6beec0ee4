"""The one place where storage arguments are checked, above every backend.

:class:`CheckedStorage` implements each :class:`~jobq.storage.base.Storage`
method as: check the arguments (the same errors, with the same words, on
every backend), answer the trivial cases (no queues, no jobs), then hand the
valid values to one of the backend's parts (:mod:`jobq.storage.parts`), which
only run SQL. A backend is a subclass that builds its parts in its
constructor and adds what is its own (connections, ``close``).

Rule: imports the storage contract, the parts' protocols and the checks; never
a backend or a driver.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TypeVar

from ..validate import check_count, check_int_range, check_seconds, check_time
from ._checks import (
    CLAIM_LIMIT_RANGE,
    LIST_LIMIT_RANGE,
    check_json,
    check_limits,
    check_new,
    check_purge,
    check_queues,
    check_schedule_name,
    is_job_id,
)
from .base import (
    FINAL_STATUSES,
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
    Storage,
    TaskLimit,
)
from .bulk import BulkStore, CheckedBulk
from .checked_batches import CheckedBatches
from .dependencies import DependencyStore, check_dependencies, check_no_unique_key
from .external import ExternalStore
from .external_checked import CheckedExternal
from .history import CheckedHistory
from .job_logs import CheckedJobLogs, JobLogStore
from .parts import Admin, Inserts, Leases, Schedules
from .workers import CheckedWorkers

S = TypeVar("S", bound="CheckedStorage")

_NOTHING_RENEWED = RenewResult(frozenset(), frozenset(), frozenset())


class CheckedStorage(
    CheckedWorkers,
    CheckedHistory,
    CheckedJobLogs,
    CheckedBulk,
    CheckedBatches,
    CheckedExternal,
    Storage,
):
    """A :class:`~jobq.storage.base.Storage` whose arguments are checked here, once,
    before one of the backend's parts runs its SQL. The methods are documented
    on :class:`~jobq.storage.base.Storage`.

    A subclass sets :attr:`_inserts`, :attr:`_leases`, :attr:`_admin`,
    :attr:`_schedules`, :attr:`_workers` (the registry of live worker pools of
    :class:`~jobq.storage.workers.CheckedWorkers`), :attr:`_job_logs` and
    :attr:`_history` (:class:`~jobq.storage.history.CheckedHistory`),
    :attr:`_bulk` (filters and bulk actions), :attr:`_batches`
    (:class:`~jobq.storage.checked_batches.CheckedBatches`) and :attr:`_external`
    (jobs written through the app's connection, :mod:`~jobq.storage.external`) in its
    constructor and implements :meth:`close`.
    Use it as a context manager, or call :meth:`close`.
    """

    _inserts: Inserts
    _leases: Leases
    _admin: Admin
    _schedules: Schedules
    _job_logs: JobLogStore
    _bulk: BulkStore
    _dependencies: DependencyStore
    _external: ExternalStore

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- enqueue ----------------------------------------------------------------------

    def enqueue(self, job: NewJob, *, now: float) -> Enqueued:
        check_new(job, None)
        check_time("now", now)
        if job.depends_on:
            (job_id,) = self._enqueue_dependent([job], now, chain=False)
            stored = self._admin.get(job_id)
            assert stored is not None
            return Enqueued(stored, True)
        return self._inserts.enqueue(job, now)

    def enqueue_many(self, jobs: Sequence[NewJob], *, now: float) -> list[int]:
        check_time("now", now)
        for index, job in enumerate(jobs):
            check_new(job, index)
        if not jobs:
            return []
        for job in jobs:
            if job.depends_on:
                return self._enqueue_dependent(jobs, now, chain=False)
        return self._inserts.enqueue_many(jobs, now)

    def enqueue_chain(self, jobs: Sequence[NewJob], *, now: float) -> list[int]:
        check_time("now", now)
        for index, job in enumerate(jobs):
            check_new(job, index)
        if not jobs:
            return []
        return self._enqueue_dependent(jobs, now, chain=True)

    def _enqueue_dependent(self, jobs: Sequence[NewJob], now: float, chain: bool) -> list[int]:
        # Every job of the call: those of a chain, and those stored beside a job
        # with dependencies in one enqueue_many (which go in as they do).
        for index, job in enumerate(jobs):
            where = f" (jobs[{index}])" if len(jobs) > 1 else ""
            check_dependencies(job, where)
            check_no_unique_key(job, where)
        return self._dependencies.enqueue(jobs, now, chain)

    def dependencies_of(self, job_id: int) -> list[int]:
        if not is_job_id(job_id):
            return []
        return self._dependencies.dependencies_of(job_id)

    def dependents_of(self, job_id: int) -> list[int]:
        if not is_job_id(job_id):
            return []
        return self._dependencies.dependents_of(job_id)

    def enqueue_payloads(
        self, template: NewJob, payloads: Sequence[str], *, now: float
    ) -> list[int]:
        check_time("now", now)
        check_new(template._replace(payload=""), None)
        if (
            template.unique_key is not None
            or template.limit_key is not None
            or template.depends_on
            or not payloads
        ):
            return self.enqueue_many([template._replace(payload=p) for p in payloads], now=now)
        for index, payload in enumerate(payloads):
            if type(payload) is not str:
                check_new(template._replace(payload=payload), index)  # raises TypeError
        return self._inserts.enqueue_payloads(template, payloads, now)

    # -- leases -----------------------------------------------------------------------

    def claim(
        self,
        queues: Collection[str],
        *,
        owner: str,
        now: float,
        lease_seconds: float,
        limit: int = 1,
        limits: Mapping[str, TaskLimit] | None = None,
        limited_at_most: int | None = None,
    ) -> list[Job]:
        names = check_queues(queues)
        check_time("now", now)
        if not isinstance(owner, str):
            raise TypeError(f"owner must be a str, got {owner!r}")
        check_seconds("lease_seconds", lease_seconds)
        check_int_range("limit", limit, CLAIM_LIMIT_RANGE)
        if limits:
            check_limits(limits, limited_at_most)
        if not names:
            return []
        return self._leases.claim(
            names, owner, now, lease_seconds, limit, limits or None, limited_at_most
        )

    def has_runnable(self, queues: Collection[str], *, now: float) -> bool:
        check_time("now", now)
        names = check_queues(queues)
        return bool(names) and self._leases.has_runnable(names, now)

    def renew(
        self, leases: Collection[tuple[int, str]], *, now: float, lease_seconds: float
    ) -> RenewResult:
        check_time("now", now)
        check_seconds("lease_seconds", lease_seconds)
        held = list(leases)
        if not held:
            return _NOTHING_RENEWED
        return self._leases.renew(held, now, lease_seconds)

    def set_progress(self, job_id: int, lease_token: str, progress: str, *, now: float) -> bool:
        check_json("progress", progress)
        check_time("now", now)
        return self._leases.set_progress(job_id, lease_token, progress, now)

    def complete(
        self, job_id: int, lease_token: str, *, now: float, result: str | None = None
    ) -> bool:
        if result is not None:
            check_json("result", result)
        check_time("now", now)
        return self._leases.complete(job_id, lease_token, now, result)

    def complete_many(self, completions: Sequence[Completion], *, now: float) -> list[bool]:
        check_time("now", now)
        for _, _, result in completions:
            if result is not None:
                check_json("result", result)
        if not completions:
            return []
        return self._leases.complete_many(completions, now)

    def fail(
        self,
        job_id: int,
        lease_token: str,
        error: JobError,
        *,
        now: float,
        retry_at: float | None = None,
    ) -> JobStatus | None:
        if not isinstance(error, JobError):
            raise TypeError(f"error must be a JobError, got {error!r}")
        check_time("now", now)
        if retry_at is not None:
            check_time("retry_at", retry_at)
        return self._leases.fail(job_id, lease_token, error, now, retry_at)

    def release(
        self, job_id: int, lease_token: str, *, now: float, run_at: float | None = None
    ) -> JobStatus | None:
        check_time("now", now)
        if run_at is not None:
            check_time("run_at", run_at)
        return self._leases.release(job_id, lease_token, now, run_at)

    def finish_cancelled(self, job_id: int, lease_token: str, *, now: float) -> bool:
        check_time("now", now)
        return self._leases.finish_cancelled(job_id, lease_token, now)

    def rescue_expired(self, *, now: float, limit: int = 1000) -> RescueResult:
        check_time("now", now)
        check_count("limit", limit)
        return self._leases.rescue_expired(now, limit)

    def expire_jobs(self, *, now: float, limit: int = 1000) -> list[int]:
        check_time("now", now)
        check_count("limit", limit)
        return self._leases.expire_jobs(now, limit)

    # -- jobs and queues --------------------------------------------------------------

    def request_cancel(self, job_id: int, *, now: float) -> Job | None:
        check_time("now", now)
        return self._admin.request_cancel(job_id, now)

    def retry(self, job_id: int, *, now: float, run_at: float | None = None) -> Job | None:
        check_time("now", now)
        if run_at is not None:
            check_time("run_at", run_at)
        return self._admin.retry(job_id, now, run_at)

    def get(self, job_id: int) -> Job | None:
        if not is_job_id(job_id):
            return None  # no such job: not an error, and never an overflow in the driver
        return self._admin.get(job_id)

    def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        queue: str | None = None,
        name: str | None = None,
        after_id: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[Job]:
        check_int_range("limit", limit, LIST_LIMIT_RANGE)
        return self._admin.list_jobs(status, queue, name, after_id, limit, newest_first)

    def stats(self, *, now: float) -> Stats:
        check_time("now", now)
        return self._admin.stats(now)

    def oldest_runnable_age(self, *, now: float) -> float:
        check_time("now", now)
        return self._admin.oldest_runnable_age(now)

    def purge(
        self,
        *,
        older_than: float,
        statuses: Collection[JobStatus] = FINAL_STATUSES,
        batch_size: int = 1000,
    ) -> int:
        chosen = check_purge(older_than, statuses, batch_size)
        return self._admin.purge(older_than, chosen, batch_size)

    def pause(self, queue: str, *, now: float) -> None:
        check_queues([queue])
        check_time("now", now)
        self._admin.pause(queue, now)

    def resume(self, queue: str) -> None:
        check_queues([queue])
        self._admin.resume(queue)

    def paused_queues(self) -> frozenset[str]:
        return self._admin.paused_queues()

    # -- schedules --------------------------------------------------------------------

    def upsert_schedule(
        self, name: str, spec: str, next_fire_at: float, *, now: float
    ) -> ScheduleState:
        check_schedule_name(name)
        check_json("spec", spec)
        check_time("next_fire_at", next_fire_at)
        check_time("now", now)
        return self._schedules.upsert_schedule(name, spec, next_fire_at, now)

    def fire_schedule(
        self, name: str, fire_at: float, next_fire_at: float, jobs: Sequence[NewJob], *, now: float
    ) -> list[int] | None:
        for label, value in (("fire_at", fire_at), ("next_fire_at", next_fire_at), ("now", now)):
            check_time(label, value)
        for index, job in enumerate(jobs):
            check_new(job, index)
        return self._schedules.fire_schedule(name, fire_at, next_fire_at, jobs, now)

    def list_schedules(self) -> list[ScheduleState]:
        return self._schedules.list_schedules()

    def set_schedule_paused(
        self, name: str, paused: bool, *, now: float, next_fire_at: float | None = None
    ) -> ScheduleState | None:
        check_time("now", now)
        if next_fire_at is not None:
            check_time("next_fire_at", next_fire_at)
        return self._schedules.set_schedule_paused(name, bool(paused), now, next_fire_at)

    def close(self) -> None:
        raise NotImplementedError
