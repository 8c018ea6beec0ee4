"""The upkeep a worker pool does besides running jobs, one small service each.

Each service does its work in :meth:`Service.run_once` (``now`` given, no
threads, no waiting) and returns what it did; :meth:`Service.tick` runs it when
``now`` has reached its :attr:`~Service.next_run` and sets the next one an
:attr:`~Service.interval` later. The pool's dispatcher only ticks them; tests
drive them with a :class:`jobq.testing.FakeClock` (as River's ``JobRescuer``,
``JobCleaner`` and ``PeriodicJobEnqueuer``).

- :class:`LeaseRescuer`: releases the jobs of workers that stopped renewing.
- :class:`DeadPoolRescuer`: releases at once the jobs of a pool whose process on
  this host is gone, without waiting for their leases.
- :class:`RetentionCleaner`: deletes finished jobs older than the retention.
- :class:`ScheduleFirer`: enqueues the declared schedules' due jobs.
- :class:`Heartbeat`: renews the leases a pool holds, and hears of cancels.
- :class:`~jobq.worker.presence.Presence` (its own module): keeps the pool's row in
  the registry of live worker pools.
- :class:`WalResetCheck`: warns once if other processes write a SQLite file
  with this process's SQLite having the WAL-reset bug.

Rule: imports basic values, storage and signals; never the pool or :mod:`jobq.queue`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from .. import defaults, signals
from ..job import JobStatus
from ..storage.base import RenewResult, RescueResult
from ..storage.workers import WorkerInfo, WorkerRegistry
from . import process
from .host import Leased, QueueHost
from .identity import process_gone, this_process

logger = logging.getLogger("jobq.worker")

MAX_RESCUE_INTERVAL = 10.0
"""Most seconds between looks for expired leases (else half the lease)."""

FIRST_PURGE_DELAY = 1.0
"""Seconds after a pool starts before its first deletion of expired jobs."""

HEARTBEATS_PER_LEASE = 3
"""Heartbeats in each lease period: a lease survives two missed ones."""

DEAD_POOL_CHECK_INTERVAL = 1.0
"""Seconds between looks for pools of this host whose process is gone."""

WAL_RESET_CHECK_INTERVAL = 15.0
"""Seconds between looks for other processes on a SQLite file, until one is seen."""


class Service:
    """Work a pool does every :attr:`interval` seconds (a subclass's :meth:`run_once`).

    :param next_run: when it first runs, in seconds of the queue's clock.
    """

    punctual = False
    """True if the dispatcher should wake for :attr:`next_run` rather than wait to
    be woken or to poll."""

    def __init__(self, host: QueueHost, *, next_run: float) -> None:
        self.host = host
        self.next_run = next_run

    @property
    def interval(self) -> float:
        """Seconds from one run to the next."""
        raise NotImplementedError

    @property
    def active(self) -> bool:
        """False while there is nothing for it to do (it is not run then)."""
        return True

    def run_once(self, now: float) -> object:
        """Do the work once as of ``now``; return what was done."""
        raise NotImplementedError

    def close(self) -> None:
        """Called once when the pool stops cleanly. Does nothing by default."""

    def tick(self, now: float) -> bool:
        """Run once if active and due at ``now``, then set :attr:`next_run`; True if it ran.
        When :meth:`run_once` raises, :attr:`next_run` stays: the next tick retries."""
        if not self.active or now < self.next_run:
            return False
        self.run_once(now)
        self.next_run = now + self.interval
        return True


class LeaseRescuer(Service):
    """Releases the jobs whose lease expired (their worker died or hangs): back to
    pending while attempts remain, else failed; cancelled if asked. Logs one WARNING
    line on ``jobq.worker`` per run that released jobs (``extra``: ``count`` and the
    ids in ``requeued``, ``failed``, ``cancelled``) and sends ``job_lease_expired``.
    Runs every half lease, at most every 10 s.

    :param on_rescued: called when jobs were released (they may be run now).
    """

    def __init__(
        self, host: QueueHost, *, next_run: float, on_rescued: Callable[[], None] | None = None
    ) -> None:
        super().__init__(host, next_run=next_run)
        self.on_rescued = on_rescued

    @property
    def interval(self) -> float:
        return min(self.host.lease_seconds / 2, MAX_RESCUE_INTERVAL)

    def run_once(self, now: float) -> RescueResult:
        rescued = self.host.storage.rescue_expired(now=now)
        if rescued.total:
            logger.warning(
                "jobq: released %d jobs whose worker stopped renewing its lease "
                "(requeued %s, failed %s, cancelled %s)",
                rescued.total,
                list(rescued.requeued),
                list(rescued.failed),
                list(rescued.cancelled),
                extra={
                    "count": rescued.total,
                    "requeued": list(rescued.requeued),
                    "failed": list(rescued.failed),
                    "cancelled": list(rescued.cancelled),
                },
            )
            _announce(self.host, rescued)
            if self.on_rescued is not None:
                self.on_rescued()
        return rescued


def _announce(host: QueueHost, rescued: RescueResult) -> None:
    if signals.job_lease_expired.receivers:
        signals.emit(
            signals.job_lease_expired,
            host,
            requeued=rescued.requeued,
            failed=rescued.failed,
            cancelled=rescued.cancelled,
        )


class DeadPoolRescuer(Service):
    """Releases at once the jobs of the pools whose process on this host is gone.

    Every second it reads the registry's rows of this host, boot and pid
    namespace (one SELECT) and asks the system about each pool's pid
    (:func:`~jobq.worker.identity.process_gone`): a pid that is free, taken by a
    process started at another time, or a zombie means the pool died without
    unregistering (SIGKILL, out of memory). Its jobs are then released as
    :class:`LeaseRescuer` releases expired ones, with ``error_type`` ``WorkerDied``,
    and its row deleted (:meth:`~jobq.storage.workers.WorkerRegistry.release_owner`).
    Logs one WARNING line on ``jobq.worker`` per dead pool whose jobs were released
    (``extra``: ``owner``, ``count`` and the ids in ``requeued``, ``failed``,
    ``cancelled``) and sends ``job_lease_expired`` with those ids. Inactive where
    the process identity is unknown (no Linux ``/proc``) or the storage has no
    registry: pools of other hosts are always left to their leases.

    :param owner: the lease owner of this pool (never released by it).
    :param on_rescued: called when jobs were released (they may be run now).
    """

    punctual = True

    def __init__(
        self,
        host: QueueHost,
        *,
        next_run: float,
        owner: str,
        on_rescued: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(host, next_run=next_run)
        self.owner = owner
        self.on_rescued = on_rescued
        self.me = this_process()
        storage = host.storage
        self.registry = storage if isinstance(storage, WorkerRegistry) else None

    @property
    def interval(self) -> float:
        return DEAD_POOL_CHECK_INTERVAL

    @property
    def active(self) -> bool:
        return self.registry is not None and self.me.known

    def _dead(self, pool: WorkerInfo) -> bool:
        if pool.owner == self.owner or pool.process_start is None:
            return False
        if pool.pid == self.me.pid and pool.process_start == self.me.process_start:
            return False  # another pool of this very process
        return process_gone(pool.pid, pool.process_start)

    def run_once(self, now: float) -> RescueResult:
        """Returns the jobs released, of every dead pool found."""
        me = self.me
        if self.registry is None or me.boot_id is None or me.pid_namespace is None:
            return RescueResult()
        found = self.registry.host_workers(
            me.host, boot_id=me.boot_id, pid_namespace=me.pid_namespace
        )
        requeued: list[int] = []
        failed: list[int] = []
        cancelled: list[int] = []
        for pool in found:
            if not self._dead(pool):
                continue
            rescued = self.registry.release_owner(pool.owner, started_at=pool.started_at, now=now)
            requeued += rescued.requeued
            failed += rescued.failed
            cancelled += rescued.cancelled
            if rescued.total:
                logger.warning(
                    "jobq: released %d jobs of worker pool %s, whose process %d on this host "
                    "is gone (requeued %s, failed %s, cancelled %s)",
                    rescued.total,
                    pool.owner,
                    pool.pid,
                    list(rescued.requeued),
                    list(rescued.failed),
                    list(rescued.cancelled),
                    extra={
                        "owner": pool.owner,
                        "count": rescued.total,
                        "requeued": list(rescued.requeued),
                        "failed": list(rescued.failed),
                        "cancelled": list(rescued.cancelled),
                    },
                )
                _announce(self.host, rescued)
        result = RescueResult(tuple(requeued), tuple(failed), tuple(cancelled))
        if result.total and self.on_rescued is not None:
            self.on_rescued()
        return result


class RetentionCleaner(Service):
    """Deletes finished jobs older than the queue's retention for their status,
    every ``retention.interval`` seconds."""

    @property
    def interval(self) -> float:
        return self.host.retention.interval

    def run_once(self, now: float) -> dict[JobStatus, int]:
        """Returns how many jobs were deleted, per status that expires."""
        storage = self.host.storage
        return {
            status: storage.purge(older_than=now - age, statuses=[status])
            for status, age in self.host.retention.ages().items()
        }


class ScheduleFirer(Service):
    """Enqueues the jobs of the declared schedules whose fire time has come (each
    fire time once across every process), about every second. Inactive while no
    schedule is declared, so that one declared later fires at the next tick."""

    punctual = True

    @property
    def interval(self) -> float:
        return defaults.SCHEDULE_CHECK_INTERVAL

    @property
    def active(self) -> bool:
        return bool(self.host.declared_schedules)

    def run_once(self, now: float) -> list[int]:
        """Returns the ids of the jobs enqueued."""
        return self.host.fire_due_schedules(now)


L = TypeVar("L", bound=Leased)


class Heartbeat(Service, Generic[L]):
    """Renews the leases of the jobs a pool holds, every third of a lease, and
    passes on what the storage answers (leases lost, cancels requested).

    :param held: what holds the leases to renew (each has a ``job``), asked at each run.
    :param on_news: called with the storage's answer and what was renewed when a
        lease was lost or a cancel requested.
    """

    def __init__(
        self,
        host: QueueHost,
        *,
        next_run: float,
        held: Callable[[], Sequence[L]],
        on_news: Callable[[RenewResult, Sequence[L]], None],
    ) -> None:
        super().__init__(host, next_run=next_run)
        self.held = held
        self.on_news = on_news

    @property
    def interval(self) -> float:
        return self.host.lease_seconds / HEARTBEATS_PER_LEASE

    def run_once(self, now: float) -> RenewResult | None:
        """Returns the storage's answer, or None when no lease is held."""
        held = self.held()
        if not held:
            return None
        result = self.host.storage.renew(
            [(h.job.id, h.job.lease_token or "") for h in held],
            now=now,
            lease_seconds=self.host.lease_seconds,
        )
        if result.lost or result.cancel_requested:
            self.on_news(result, held)
        return result


class WalResetCheck(Service):
    """Looks, at the pool's start and then every 15 s, for other processes that have
    the queue's SQLite file open, and warns once per process if they do while this
    process's SQLite has the WAL-reset bug (:func:`~jobq.worker.process.check_wal_reset_risk`).
    Stops looking once warned, or at once for a storage that is not at risk."""

    def __init__(self, host: QueueHost, *, next_run: float) -> None:
        super().__init__(host, next_run=next_run)
        self.done = False

    @property
    def interval(self) -> float:
        return WAL_RESET_CHECK_INTERVAL

    @property
    def active(self) -> bool:
        return not self.done

    def run_once(self, now: float) -> bool:
        """Returns True once nothing is left to check."""
        self.done = process.check_wal_reset_risk(self.host.storage)
        return self.done
