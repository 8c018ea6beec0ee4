"""The storage contract: what the durable queue asks of a database, and nothing more.

The queue holds a :class:`Storage` that :func:`jobq.storage.open_storage` opened
for it and never names a backend. The backends (:mod:`jobq.storage.sqlite`,
:mod:`jobq.storage.postgres`) implement it below
:class:`~jobq.storage.checked.CheckedStorage`, which checks every argument
once; one contract test suite (``tests/storage``) runs against each of them.
Rule: imports basic values only (``errors``, ``job``).

Rules every backend follows:

- **Time is an argument.** Every call that depends on time takes ``now``, wall
  clock epoch seconds, from the caller; storage never reads the process's
  clock, so tests drive time by passing numbers. (PostgreSQL, by default,
  reads its server's clock instead, so hosts with skewed clocks agree.)
- **Leases.** :meth:`Storage.claim` hands a job to one worker with a random
  ``lease_token`` valid until ``lease_expires_at``. Every later change made on
  the worker's behalf (renew, progress, complete, fail, release, finish as
  cancelled) is conditioned on that token: once the lease has been rescued or
  the job taken by another worker, the old holder's calls change nothing and
  report so (``False`` / ``None``). A lease that lapsed but was not yet
  rescued still works for its holder: no other worker can hold the job meanwhile.
- **JSON text in, JSON text out.** Payloads, results and progress are JSON
  text (``str``) encoded by the caller (the queue's codec), stored unparsed;
  anything else is rejected with :class:`TypeError` before anything is
  written. Never pickle.
- **Every write is one short transaction** committed before the call returns.
- **Attempts** count claims: a claim adds one, so a worker that dies mid-job
  has used an attempt (:meth:`Storage.release` gives it back on purpose).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol, runtime_checkable

from ..errors import (
    SchemaVersionError,
    StorageError,
    TooManyPausedQueues,
    UniqueKeyConflict,
    WrongProcessError,
)
from ..job import Job, JobError, JobStatus
from .batches import BatchStorage
from .bulk import BulkStorage
from .dependencies import DependencyStorage
from .external import ExternalStorage
from .job_logs import JobLogStorage
from .records import (
    Completion,
    Enqueued,
    NewJob,
    QueueStats,
    RenewResult,
    RescueResult,
    ScheduleState,
    Stats,
    TaskLimit,
)

__all__ = [
    "Completion",
    "Enqueued",
    "FINAL_STATUSES",
    "Job",
    "JobError",
    "JobStatus",
    "MAX_PAUSED_QUEUES",
    "NewJob",
    "Notifier",
    "QueueStats",
    "RenewResult",
    "RescueResult",
    "ScheduleState",
    "SchemaVersionError",
    "Stats",
    "Storage",
    "StorageError",
    "TaskLimit",
    "TooManyPausedQueues",
    "UniqueKeyConflict",
    "WrongProcessError",
]

MAX_PAUSED_QUEUES = 1000
"""Most queue names that may be paused at once (:meth:`Storage.pause` raises
:class:`TooManyPausedQueues` beyond it). Pausing is for the queues an app uses,
so this is far above need; it keeps names from piling up in every stats answer.
"""
FINAL_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
"""The statuses a job ends in; what :meth:`Storage.purge` deletes by default."""


@runtime_checkable
class Storage(
    BulkStorage, JobLogStorage, BatchStorage, DependencyStorage, ExternalStorage, Protocol
):
    """Durable job storage with leases, job log lines (:mod:`.job_logs`),
    filters with bulk actions (:mod:`.bulk`), batches (:mod:`.batches`),
    dependencies (:mod:`.dependencies`), and jobs written in the app's own
    transaction (:mod:`.external`). Safe to
    share between threads; each process opens its own connections (a storage object
    survives ``fork()``).

    Unless said otherwise, ids that do not exist are not an error: the call
    reports that it changed nothing. Backend failures raise :class:`StorageError`.
    """

    def enqueue(self, job: NewJob, *, now: float) -> Enqueued:
        """Store one pending job and return it.

        If ``job.unique_key`` is held by a pending or processing job of the same
        task (``job.name``), nothing is inserted and that job is returned with
        ``created=False``; a job of another task never blocks it. Concurrent
        enqueues of one task and key store exactly one job.

        With ``job.on_duplicate == "replace"``, a *pending* holder takes
        ``job``'s payload, priority and run time (``run_at``, or ``now``) and is
        returned with ``replaced=True``; its id, queue, ``max_attempts``,
        attempts and ``created_at`` stay. A *processing* holder is never changed:
        its ``unique_key`` becomes None and ``job`` is inserted (``created=True``).
        A claim racing a replace either takes the job before (then a new job is
        inserted) or after it (then it runs the new payload). Concurrent replaces
        of one key leave one pending job, holding the payload of the last to commit.

        With ``job.throttle``, a job of the same task and key created in
        ``(now - throttle, now]``, in any status, is returned (the newest) and
        nothing is inserted; concurrent throttled enqueues agree on one job.
        Raises TypeError if the payload is not a ``str``; ValueError for a bad
        field (e.g. ``max_attempts`` < 1).
        """
        ...

    def enqueue_many(self, jobs: Sequence[NewJob], *, now: float) -> list[int]:
        """Store many jobs in one transaction, all or none; return their ids in order.

        Unique keys behave as in :meth:`enqueue` (the existing job's id is
        returned; ``on_duplicate`` and ``throttle`` apply), also between entries of
        the same call, in their order. Every entry is
        checked before anything is written (TypeError, ValueError).
        """
        ...

    def enqueue_payloads(
        self, template: NewJob, payloads: Sequence[str], *, now: float
    ) -> list[int]:
        """:meth:`enqueue_many` of jobs equal to ``template`` but for their payloads
        (``template.payload`` is ignored): the bulk path, which a backend can run as
        one statement. Returns the ids in order."""
        ...

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
        """Lease up to ``limit`` runnable jobs to worker ``owner``; committed on return.

        Runnable: pending, ``run_at <= now``, in one of ``queues`` and that queue
        not paused. Order: highest priority, then oldest ``run_at``, then id.
        Each claimed job becomes processing with ``attempts + 1``, a fresh
        ``lease_token``, ``lease_expires_at = now + lease_seconds`` and
        ``started_at = now``. Returns the claimed jobs in that order; an empty
        list when none is runnable. ``limit``: 1 to 1000 (ValueError otherwise);
        ``lease_seconds`` > 0.

        ``limits`` maps task names to :class:`TaskLimit`: jobs of those tasks are
        claimed only while their concurrency limit and rate window allow, counted
        over every process (a claim counts as a start), and at most
        ``limited_at_most`` of them in this call (None: no such cap). Claims that
        involve limits are serialised so that concurrent claimers never exceed them.
        A limit with ``per_key`` holds for each job ``limit_key`` on its own (jobs
        without a key form one group); the jobs of a key at its limit never keep
        the claim from jobs of other keys behind them. With the caller's clock, a
        claim whose rate windows hold a start later than ``now`` (its caller read
        the clock before waiting for the database, and a fresher claim went
        first) happens at that newest start instead, as ``now`` above: starts are
        recorded in order, and no window of ``per`` seconds holds more than
        ``rate`` of them.
        """
        ...

    def has_runnable(self, queues: Collection[str], *, now: float) -> bool:
        """Whether :meth:`claim` would find a job now, read without taking the write
        lock (so idle workers polling often do not queue up behind writers).
        A hint: another worker may claim the job first."""
        ...

    def renew(
        self, leases: Collection[tuple[int, str]], *, now: float, lease_seconds: float
    ) -> RenewResult:
        """Heartbeat: extend each held lease, given as ``(job_id, lease_token)``,
        to ``now + lease_seconds``, in one transaction. See :class:`RenewResult`."""
        ...

    def set_progress(self, job_id: int, lease_token: str, progress: str, *, now: float) -> bool:
        """Record ``progress`` (JSON text) for a job the caller holds.

        Returns False, changing nothing, if the lease is not held.
        """
        ...

    def complete(
        self, job_id: int, lease_token: str, *, now: float, result: str | None = None
    ) -> bool:
        """Mark a held job completed with ``result`` (JSON text or None).

        Returns False, changing nothing, if the lease is not held (fencing).
        A pending cancel request does not prevent completion.
        """
        ...

    def complete_many(self, completions: Sequence[Completion], *, now: float) -> list[bool]:
        """:meth:`complete` for many jobs in one transaction (group commit);
        one bool per entry, in order."""
        ...

    def fail(
        self,
        job_id: int,
        lease_token: str,
        error: JobError,
        *,
        now: float,
        retry_at: float | None = None,
    ) -> JobStatus | None:
        """Record ``error`` for a held job and release it.

        The job goes back to pending with ``run_at = retry_at`` when
        ``retry_at`` is given and ``attempts < max_attempts``; it ends
        ``cancelled`` if a cancel was requested; otherwise it ends ``failed``.
        Returns the new status, or None, changing nothing, if the lease is not held.
        """
        ...

    def release(
        self, job_id: int, lease_token: str, *, now: float, run_at: float | None = None
    ) -> JobStatus | None:
        """Hand a held job back without counting the attempt (the task asked to run
        later, or the worker stops before starting it).

        The job goes back to pending at ``run_at`` (default ``now``) with
        ``attempts - 1``, or ends cancelled if a cancel was requested. Returns
        the new status, or None, changing nothing, if the lease is not held.
        """
        ...

    def finish_cancelled(self, job_id: int, lease_token: str, *, now: float) -> bool:
        """End a held job as cancelled (the worker stopped it, usually after a
        cancel request). Returns False, changing nothing, if the lease is not held."""
        ...

    def rescue_expired(self, *, now: float, limit: int = 1000) -> RescueResult:
        """Release up to ``limit`` processing jobs whose lease expired (``lease_expires_at
        <= now``): back to pending (same ``run_at``, the attempt stays counted) while
        ``attempts < max_attempts``, else failed; cancelled if a cancel was requested.
        Each gets the error ``LeaseExpired: lease expired (worker died?)``. Call
        it again while it returns ``limit`` jobs."""
        ...

    def expire_jobs(self, *, now: float, limit: int = 1000) -> list[int]:
        """End as ``cancelled`` up to ``limit`` pending jobs whose ``expires_at`` is
        ``<= now`` (those waiting for their first attempt or for a retry, due or
        not), earliest expiry first; return their ids, ascending. Each gets the error
        ``Expired: expired at <UTC time> before it started`` (``before attempt N
        started`` for a retry) and ``finished_at = now``. :meth:`claim` never hands
        out such a job meanwhile. Call it again while it returns ``limit`` ids."""
        ...

    def request_cancel(self, job_id: int, *, now: float) -> Job | None:
        """Cancel a job: a pending one becomes cancelled at once; a processing one
        gets ``cancel_requested`` (its worker learns it from :meth:`renew`); a
        final one is left alone. Returns the job afterwards, None if unknown."""
        ...

    def retry(self, job_id: int, *, now: float, run_at: float | None = None) -> Job | None:
        """Move a failed or cancelled job back to pending at ``run_at`` (default ``now``).

        ``attempts`` is reset to 0, so it gets its full ``max_attempts`` again;
        the last error is kept for reference, result, progress, cancel request
        and lease are cleared. Returns the job, or None if it is unknown or not
        failed/cancelled. Raises :class:`UniqueKeyConflict` when another live
        job of the same task holds its ``unique_key``.
        """
        ...

    def get(self, job_id: int) -> Job | None:
        """The job with this id, or None."""
        ...

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
        """Jobs matching every filter given, at most ``limit`` (1..10,000), by id.

        Cursor pagination: pass the last id of a page as ``after_id`` to get
        the next; with ``newest_first`` ids go down and ``after_id`` means "below".
        """
        ...

    def stats(self, *, now: float) -> Stats:
        """Counts per queue and status, scheduled jobs, age of the oldest
        runnable job, and jobs finished in the last minute. See :class:`Stats`.

        Counts are kept as jobs change state, so the cost follows the number of
        queues and of jobs scheduled for later, not the number of rows."""
        ...

    def oldest_runnable_age(self, *, now: float) -> float:
        """Seconds since the oldest runnable job (pending, ``run_at <= now``) of a
        queue that is not paused became due; 0.0 when there is none. The
        largest :attr:`QueueStats.oldest_runnable_age` of the unpaused queues,
        read off an index (one seek per queue), for health checks."""
        ...

    def purge(
        self,
        *,
        older_than: float,
        statuses: Collection[JobStatus] = FINAL_STATUSES,
        batch_size: int = 1000,
    ) -> int:
        """Delete final jobs that finished before ``older_than`` (epoch seconds).

        Deletes in transactions of at most ``batch_size`` rows so writers are
        never held up long; returns how many were deleted. Only final statuses
        may be given (ValueError otherwise). Batches that finished before
        ``older_than`` and have no job left (neither their own jobs nor their
        callback jobs) are deleted too, so :meth:`batch` no longer finds them.
        """
        ...

    def pause(self, queue: str, *, now: float) -> None:
        """Stop claims from ``queue`` (jobs can still be enqueued). Idempotent.

        Raises :class:`TooManyPausedQueues` when :data:`MAX_PAUSED_QUEUES` other
        names are paused already."""
        ...

    def resume(self, queue: str) -> None:
        """Let claims from ``queue`` start again. Idempotent."""
        ...

    def paused_queues(self) -> frozenset[str]:
        """Names of the paused queues."""
        ...

    def upsert_schedule(
        self, name: str, spec: str, next_fire_at: float, *, now: float
    ) -> ScheduleState:
        """Store the schedule ``name`` if it is new; if its ``spec`` changed, store the
        new spec and ``next_fire_at``; otherwise leave it as it is. Returns it."""
        ...

    def fire_schedule(
        self, name: str, fire_at: float, next_fire_at: float, jobs: Sequence[NewJob], *, now: float
    ) -> list[int] | None:
        """Fire the schedule once: if its ``next_fire_at`` is still ``fire_at``, it is
        not paused and ``fire_at <= now``, set it to ``next_fire_at`` and enqueue
        ``jobs``, in one transaction; return their ids. Otherwise (another
        process fired it first) change nothing and return None."""
        ...

    def list_schedules(self) -> list[ScheduleState]:
        """Every stored schedule, by name."""
        ...

    def set_schedule_paused(
        self, name: str, paused: bool, *, now: float, next_fire_at: float | None = None
    ) -> ScheduleState | None:
        """Pause or resume a schedule; ``next_fire_at``, if given, replaces its next
        fire time (resuming skips what was missed). None if there is no such schedule."""
        ...

    def close(self) -> None:
        """Close this process's connections. The object must not be used afterwards."""
        ...


@runtime_checkable
class Notifier(Protocol):
    """A storage that can say when any process enqueues a job (PostgreSQL's
    LISTEN/NOTIFY). Worker pools subscribe to wake at once instead of polling."""

    def subscribe(self, callback: Callable[[str | None], None]) -> Callable[[], None]:
        """Call ``callback(queue_name)`` for new jobs, ``callback(None)`` when some
        may have been missed; return the function that unsubscribes."""
        ...
