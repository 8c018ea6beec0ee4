"""SQLiteStorage: the :class:`~jobq.storage.base.Storage` contract on one SQLite file.

Several processes (gunicorn workers, a worker process, the ``flask jobq`` CLI)
may open the same file. Each process opens its own connections, one per thread
(closed once that thread has ended, or by :meth:`SQLiteStorage.close`); after
``fork()`` the child opens new ones and never touches the parent's. Within one
process a file must be opened with one driver only (enforced): ``sqlite3`` and
``apsw`` carry separate copies of SQLite, which do not see each other's locks.

How it stays out of "database is locked": the file is in WAL mode (readers
never block the writer), every write transaction starts with ``BEGIN
IMMEDIATE`` (it takes the write lock up front, so it never has to upgrade a
read lock and fail), ``busy_timeout`` makes SQLite wait for the lock, and the
rare busy that remains is retried a bounded number of times before
:class:`~jobq.storage.base.StorageError` is raised.

Durability (``synchronous=``):

- ``"NORMAL"`` (default): a committed job survives a crash of the process,
  including ``kill -9``. After a power loss or OS crash the last transactions
  committed before it may be lost (the database stays consistent).
- ``"FULL"``: also survives power loss and OS crashes, at the cost of an
  fsync per commit (much slower on most disks).

The WAL is checkpointed into the database automatically every 1,000 pages;
:meth:`SQLiteStorage.checkpoint` runs one on demand (run ``"TRUNCATE"`` now
and then when readers are rarely idle and the WAL keeps growing), and
``journal_size_limit`` caps what is kept of the WAL file afterwards.

Cost: claims, renewals, rescue and unique-key checks are O(log n) in the
number of jobs (partial indexes hold only pending or processing rows), except
that a claim steps over not-yet-due jobs of a *higher* priority than the job
it takes. :meth:`SQLiteStorage.stats` reads counts kept per queue and status by
triggers, plus a few index seeks per queue: its cost follows the number of
queues and of jobs scheduled for later, not the size of the table.

The class is composed of parts, each a module of this package: the file and
its connections (:mod:`.database`, over the driver adapter :mod:`.driver` and
the schema :mod:`.schema`), and the parts that run SQL (:mod:`.sql`) for new
jobs (:mod:`.inserts`), leases (:mod:`.leases`), administration
(:mod:`.admin`), schedules (:mod:`.schedules`), the live worker pools
(:mod:`.workers`), job log lines (:mod:`.job_logs`), job history
(:mod:`.history`), filters with bulk actions (:mod:`.bulk`), batches
(:mod:`.batches`), dependencies (:mod:`.dependencies`), and jobs written
through the app's own connection (:mod:`.external`). Arguments are checked
once, above them, by :class:`~jobq.storage.checked.CheckedStorage`.

Wake-ups between processes (:mod:`.wakeup`): after each committed change that
makes a job runnable (enqueue, bulk enqueue, retry, release, rescue, schedule
fire, resume of a paused queue, the last dependency of a waiting job
completing), this class tells the other processes of the host that use the
file, and worker pools subscribe (the
:class:`~jobq.storage.base.Notifier` protocol) to be told at once instead of
polling.

Rule: imports its own parts, the checking layer and the storage contract.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..base import Completion, Enqueued, Job, JobError, JobStatus, NewJob, RescueResult
from ..batches import BatchState
from ..bulk import BULK_BATCH, BulkResult, JobFilter
from ..checked import CheckedStorage
from .admin import SQLiteAdmin
from .batches import SQLiteBatches
from .bulk import SQLiteBulk
from .database import DEFAULT_FILE_MODE, CheckpointMode, Database, Synchronous, folder_mode
from .dependencies import SQLiteDependencies
from .driver import DriverName
from .external import SQLiteExternal
from .history import SQLiteHistory
from .inserts import SQLiteInserts
from .job_logs import SQLiteJobLogs
from .leases import SQLiteLeases
from .schedules import SQLiteSchedules
from .schema import affected_by_wal_reset_bug
from .sharing import other_processes
from .wakeup import WakeChannel, channel_for, enabled_by_environment, release
from .workers import SQLiteWorkers

__all__ = ["SQLiteStorage"]


class SQLiteStorage(CheckedStorage):
    """Jobs in a SQLite database file, shared safely by threads and processes.

    :param path: the database file; created (with its schema) if missing, and so
        are missing folders above it (``0o700``, or what ``file_mode`` lets others
        do: ``0o660`` gives ``0o770``; folders that exist keep their mode).
        ``":memory:"`` is refused: each thread would see its own database.
    :param driver: ``"auto"`` (default): ``"apsw"`` when the apsw package is
        installed (the ``jobq[apsw]`` extra, which bundles a recent SQLite: free
        of the WAL-reset bug, and faster for claims), else ``"sqlite3"`` (the
        standard library); or either one forced. A file already open in this
        process keeps its driver under ``"auto"``.
    :param synchronous: ``"NORMAL"`` (default) or ``"FULL"``; see the module
        docstring for what each survives.
    :param busy_timeout: seconds SQLite waits for another writer's lock before
        reporting busy. Default 5.0; must be >= 0.
    :param journal_size_limit: bytes of WAL file kept after a checkpoint.
        Default 64 MiB; -1 for no limit.
    :param file_mode: permissions of the file if it is created here (its
        ``-wal`` and ``-shm`` files get the same). Default ``0o600``: job
        arguments are readable by the file's owner only. Give e.g. ``0o660``
        for processes of one group that run as different users; an existing
        file keeps its permissions. Must include ``0o600``.

    The file is opened, and pending schema migrations run, in the constructor
    (several processes may open a fresh file at once). Raises ValueError for
    bad options, :class:`~jobq.storage.base.SchemaVersionError` if the file
    was written by a newer jobq, :class:`~jobq.storage.base.StorageError` if
    it cannot be opened. Use as a context manager, or call :meth:`close`.
    The methods are documented on :class:`~jobq.storage.base.Storage`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        driver: DriverName = "auto",
        synchronous: Synchronous = "NORMAL",
        busy_timeout: float = 5.0,
        journal_size_limit: int = 64 * 1024 * 1024,
        file_mode: int = DEFAULT_FILE_MODE,
        wakeup: bool | None = None,
    ) -> None:
        self._db = Database(
            str(path),
            driver=driver,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            journal_size_limit=journal_size_limit,
            file_mode=file_mode,
        )
        self.path = self._db.path
        inserts = SQLiteInserts(self._db)
        self._inserts = inserts
        self._leases = SQLiteLeases(self._db)
        self._admin = SQLiteAdmin(self._db)
        self._schedules = SQLiteSchedules(self._db, inserts)
        self._workers = SQLiteWorkers(self._db)
        self._job_logs = SQLiteJobLogs(self._db)
        self._bulk = SQLiteBulk(self._db)
        self._history = SQLiteHistory(self._db)
        self._batches = self._sqlite_batches = batches = SQLiteBatches(self._db, inserts)
        self._dependencies = SQLiteDependencies(self._db, self._woken_all)
        self._external = SQLiteExternal(self._db, inserts, self._woken)
        try:
            self._db.conn()  # open now: a bad path or schema shows up here
        except BaseException:
            self._db.close()
            raise
        self._wake: WakeChannel | None = None
        self._channel: WakeChannel | None = None
        if wakeup if wakeup is not None else enabled_by_environment():
            channel = self._channel = channel_for(self.path, folder_mode(file_mode), file_mode)
            if channel.problem is None:
                self._wake = channel
                # Only a storage that can wake pools is a Notifier: the others'
                # pools keep polling at their poll_interval.
                self.subscribe = channel.subscribe
                self._last_finish = batches.last_finish()

    notifies_every_enqueue = False
    """The wake-up channel reaches only the processes of this host that have it on,
    so worker pools keep polling at their ``poll_interval``: a job from a process
    without the channel, or a delayed job falling due, is found as soon as before."""

    subscribe: Callable[[Callable[[str | None], None]], Callable[[], None]]
    """Present where the wake-up channel works (see ``wakeup``): call
    ``callback(queue_name)`` when another process of this host makes a job of
    ``queue_name`` runnable (None: some queue), return the function that
    unsubscribes. If this process's socket cannot be bound, a warning says why
    and pools find other processes' jobs by polling, as without the channel."""

    # -- wake-ups after commits that make jobs runnable --------------------------------------

    def _woken(self, queue: str | None) -> None:
        if self._wake is not None:
            self._wake.notify(queue)

    def _woken_all(self, queues: set[str]) -> None:
        if self._wake is not None:
            for queue in queues:
                self._wake.notify(queue)

    def _woken_for(self, jobs: Sequence[NewJob], now: float) -> None:
        if self._wake is not None:
            for queue in {job.queue for job in jobs if job.run_at is None or job.run_at <= now}:
                self._wake.notify(queue)

    def enqueue(self, job: NewJob, *, now: float) -> Enqueued:
        enqueued = super().enqueue(job, now=now)
        changed = enqueued.created or enqueued.replaced
        if self._wake is not None and changed and enqueued.job.run_at <= now:
            self._wake.notify(enqueued.job.queue)
        return enqueued

    def enqueue_many(self, jobs: Sequence[NewJob], *, now: float) -> list[int]:
        ids = super().enqueue_many(jobs, now=now)
        self._woken_for(jobs, now)
        return ids

    def enqueue_payloads(
        self, template: NewJob, payloads: Sequence[str], *, now: float
    ) -> list[int]:
        ids = super().enqueue_payloads(template, payloads, now=now)
        if ids:
            self._woken_for([template], now)
        return ids

    def release(
        self, job_id: int, lease_token: str, *, now: float, run_at: float | None = None
    ) -> JobStatus | None:
        status = super().release(job_id, lease_token, now=now, run_at=run_at)
        if status is JobStatus.PENDING and (run_at is None or run_at <= now):
            self._woken(None)
        elif status is JobStatus.CANCELLED:
            self._batch_callbacks_woken()
        return status

    def rescue_expired(self, *, now: float, limit: int = 1000) -> RescueResult:
        result = super().rescue_expired(now=now, limit=limit)
        if result.requeued:
            self._woken(None)
        elif result.total:
            self._batch_callbacks_woken()
        return result

    def release_owner(self, owner: str, *, started_at: float, now: float) -> RescueResult:
        result = super().release_owner(owner, started_at=started_at, now=now)
        if result.requeued:
            self._woken(None)
        elif result.total:
            self._batch_callbacks_woken()
        return result

    def retry(self, job_id: int, *, now: float, run_at: float | None = None) -> Job | None:
        job = super().retry(job_id, now=now, run_at=run_at)
        if job is not None and job.status is JobStatus.PENDING and job.run_at <= now:
            self._woken(job.queue)
        return job

    def retry_matching(
        self, filter: JobFilter, *, now: float, batch_size: int = BULK_BATCH
    ) -> BulkResult:
        result = super().retry_matching(filter, now=now, batch_size=batch_size)
        if result.changed:
            self._woken(None)
        return result

    def cancel_matching(
        self, filter: JobFilter, *, now: float, batch_size: int = BULK_BATCH
    ) -> BulkResult:
        result = super().cancel_matching(filter, now=now, batch_size=batch_size)
        if result.changed:
            self._batch_callbacks_woken()
        return result

    def delete_matching(
        self, filter: JobFilter, *, now: float, batch_size: int = BULK_BATCH
    ) -> BulkResult:
        result = super().delete_matching(filter, now=now, batch_size=batch_size)
        if result.changed:
            self._batch_callbacks_woken()
        return result

    def resume(self, queue: str) -> None:
        super().resume(queue)
        self._woken(queue)

    def fire_schedule(
        self, name: str, fire_at: float, next_fire_at: float, jobs: Sequence[NewJob], *, now: float
    ) -> list[int] | None:
        ids = super().fire_schedule(name, fire_at, next_fire_at, jobs, now=now)
        if ids:
            self._woken_for(jobs, now)
        return ids

    # -- wake-ups for batch callbacks, which triggers insert as a job ends ---------------

    _last_finish: float | None = None

    def _batch_callbacks_woken(self) -> None:
        """Wake the other processes if a batch finished since the last look (one
        seek). This process's pools need no wake: the pool that ended the job
        claims again right after recording it."""
        if self._wake is not None:
            finish = self._sqlite_batches.last_finish()
            if finish != self._last_finish:
                self._last_finish = finish
                self._wake.notify(None)

    def complete(
        self, job_id: int, lease_token: str, *, now: float, result: str | None = None
    ) -> bool:
        done = super().complete(job_id, lease_token, now=now, result=result)
        self._batch_callbacks_woken()
        return done

    def complete_many(self, completions: Sequence[Completion], *, now: float) -> list[bool]:
        done = super().complete_many(completions, now=now)
        self._batch_callbacks_woken()
        return done

    def fail(
        self,
        job_id: int,
        lease_token: str,
        error: JobError,
        *,
        now: float,
        retry_at: float | None = None,
    ) -> JobStatus | None:
        status = super().fail(job_id, lease_token, error, now=now, retry_at=retry_at)
        self._batch_callbacks_woken()
        return status

    def finish_cancelled(self, job_id: int, lease_token: str, *, now: float) -> bool:
        done = super().finish_cancelled(job_id, lease_token, now=now)
        self._batch_callbacks_woken()
        return done

    def expire_jobs(self, *, now: float, limit: int = 1000) -> list[int]:
        ids = super().expire_jobs(now=now, limit=limit)
        if ids:
            self._batch_callbacks_woken()
        return ids

    def request_cancel(self, job_id: int, *, now: float) -> Job | None:
        job = super().request_cancel(job_id, now=now)
        self._batch_callbacks_woken()
        return job

    def seal_batch(self, batch_id: int, *, now: float) -> BatchState:
        state = super().seal_batch(batch_id, now=now)
        self._batch_callbacks_woken()
        return state

    def cancel_batch(self, batch_id: int, *, now: float) -> BatchState:
        state = super().cancel_batch(batch_id, now=now)
        self._batch_callbacks_woken()
        return state

    def enqueue_in_batch(self, batch_id: int, jobs: Sequence[NewJob], *, now: float) -> list[int]:
        ids = super().enqueue_in_batch(batch_id, jobs, now=now)
        self._woken_for(jobs, now)
        return ids

    def enqueue_payloads_in_batch(
        self, batch_id: int, template: NewJob, payloads: Sequence[str], *, now: float
    ) -> list[int]:
        ids = super().enqueue_payloads_in_batch(batch_id, template, payloads, now=now)
        if ids:
            self._woken_for([template], now)
        return ids

    @property
    def _returning(self) -> bool:
        """Whether statements use RETURNING (SQLite >= 3.35); the tests turn it off
        to run the path taken on older SQLite."""
        return self._db.returning

    @_returning.setter
    def _returning(self, value: bool) -> None:
        self._db.returning = value

    @property
    def driver(self) -> str:
        """``"sqlite3"`` or ``"apsw"``."""
        return self._db.driver.name

    @property
    def sqlite_version(self) -> tuple[int, int, int]:
        """Version of the SQLite library the driver uses."""
        return self._db.driver.version

    @property
    def affected_by_wal_reset_bug(self) -> bool:
        """True if this SQLite (3.7.0 to 3.51.2) has the WAL-reset bug that can
        corrupt a database written by several processes at once; ``driver="apsw"``
        bundles a fixed one."""
        return affected_by_wal_reset_bug(self._db.driver.version)

    def other_processes(self) -> set[int] | None:
        """Ids of the other processes that have this file open now (Linux, from
        ``/proc/locks``), or None where the system does not tell."""
        return other_processes(self.path)

    def checkpoint(self, mode: CheckpointMode = "PASSIVE") -> tuple[int, int, int]:
        """Copy the WAL into the database file now (``PRAGMA wal_checkpoint``).

        ``"PASSIVE"`` (default) never waits; ``"FULL"``, ``"RESTART"`` and
        ``"TRUNCATE"`` wait for other connections (up to ``busy_timeout``), the
        last two so the WAL starts over, TRUNCATE also shrinking the file to zero
        bytes. Returns SQLite's ``(busy, wal_pages, checkpointed_pages)``;
        ``busy`` is 1 if other connections kept it from finishing.
        """
        return self._db.checkpoint(mode)

    def close(self) -> None:
        channel, self._channel, self._wake = self._channel, None, None
        if channel is not None:
            release(channel)
        self._db.close()

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r}, driver={self.driver!r})"
