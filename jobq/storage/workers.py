"""The registry of live worker pools: the storage contract's piece for it.

Every worker pool, in any process on any host, keeps one row in the database
while it runs: it registers as it starts, its dispatcher marks it seen at each
heartbeat (one short UPDATE every third of a lease), and it unregisters on a
clean stop. A pool that was killed simply stops being seen: it is *live* while
seen within ``max_age`` seconds, by default its own lease period (the time
after which its jobs would be rescued as well). Rows not seen for
:data:`FORGET_WORKERS_AFTER` are deleted when another pool registers.

Each row also holds the pool's process identity (boot id, pid namespace, start
time of the process) and what its busy threads run (:class:`WorkerThread`,
written at each heartbeat). With the identity, another pool on the same host
can tell that a pool's process is gone and release its jobs at once
(:meth:`WorkerRegistry.release_owner`) instead of waiting for their leases.

- :class:`WorkerInfo`: one live pool, as :meth:`WorkerRegistry.live_workers` returns it.
- :class:`WorkerThread`: one busy thread of a pool and the job it runs.
- :class:`WorkerRegistry`: the calls a storage offers (both backends do).
- :class:`WorkerRows`: the part a backend implements (SQL only).
- :class:`CheckedWorkers`: the checks, once, above the backends; mixed into
  :class:`~jobq.storage.checked.CheckedStorage`.

Rule: imports basic values only (``validate``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..validate import check_count, check_seconds, check_time
from .base import RescueResult

__all__ = [
    "FORGET_WORKERS_AFTER",
    "CheckedWorkers",
    "NewWorker",
    "WorkerInfo",
    "WorkerRegistry",
    "WorkerRows",
    "WorkerThread",
]

FORGET_WORKERS_AFTER = 86400.0
"""Seconds after which the row of a pool no longer seen is deleted (1 day)."""

WORKER_COLS = (
    "owner, host, pid, name, queues, concurrency, lease_seconds, started_at, last_seen_at, "
    "stopping, boot_id, pid_namespace, process_start, threads"
)
"""The columns of a worker row, in the order :func:`worker_infos` reads them."""

DIED_ERROR = "WorkerDied"
"""The ``error_type`` of a job released by :meth:`WorkerRegistry.release_owner`."""


@dataclass(frozen=True)
class WorkerThread:
    """A busy thread of a pool, as the pool wrote it at its last heartbeat.

    :param job_id: the job it runs. :param task: the job's task name.
    :param thread: the thread's name.
    :param started_at: when it took the job, epoch seconds (the pool's clock).
    :param stuck_since: when the attempt ended (timed out, or given up at a stop)
        while the thread still runs the task, epoch seconds; None if not stuck.
    """

    job_id: int
    task: str
    thread: str
    started_at: float
    stuck_since: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The thread as JSON-ready values."""
        return {
            "job_id": self.job_id,
            "task": self.task,
            "thread": self.thread,
            "started_at": self.started_at,
            "stuck_since": self.stuck_since,
        }


def threads_json(threads: Sequence[WorkerThread]) -> str:
    """The threads column: a JSON list of :meth:`WorkerThread.as_dict`."""
    return json.dumps([thread.as_dict() for thread in threads])


def read_threads(text: str | None) -> tuple[WorkerThread, ...]:
    """The threads column's values (an unreadable or empty column reads as none)."""
    try:
        items = json.loads(text) if text else []
        return tuple(
            WorkerThread(
                job_id=int(item["job_id"]),
                task=str(item["task"]),
                thread=str(item["thread"]),
                started_at=float(item["started_at"]),
                stuck_since=None if item.get("stuck_since") is None else float(item["stuck_since"]),
            )
            for item in items
        )
    except (ValueError, TypeError, KeyError):
        return ()


@dataclass(frozen=True)
class NewWorker:
    """A pool registering itself (:meth:`WorkerRegistry.register_worker`).

    :param owner: the pool's lease owner, ``host:pid:name``: the row's key, and
        the ``lease_owner`` of the jobs it holds.
    :param host: the host name. :param pid: the process id. :param name: the pool's name.
    :param queues: the queue names it takes jobs from.
    :param concurrency: its worker threads (>= 1).
    :param lease_seconds: its lease period in seconds (> 0): it is seen every
        third of it, and is no longer live once a whole one passed unseen.
    :param boot_id: the host's boot id (Linux ``/proc/sys/kernel/random/boot_id``),
        None where unknown. :param pid_namespace: the inode of the process's pid
        namespace, None where unknown. :param process_start: the process's start
        time in clock ticks since boot (field 22 of ``/proc/<pid>/stat``), None
        where unknown. Together with ``host`` they let another process on the same
        host tell that this one is gone (its pid free, or reused by another process).
    """

    owner: str
    host: str
    pid: int
    name: str
    queues: tuple[str, ...]
    concurrency: int
    lease_seconds: float
    boot_id: str | None = None
    pid_namespace: int | None = None
    process_start: int | None = None


@dataclass(frozen=True)
class WorkerInfo:
    """A live worker pool, as recorded in the database by the pool itself.

    :param owner: ``host:pid:name``, also the ``lease_owner`` of its jobs.
    :param host: host name of its process. :param pid: its process id.
    :param name: the pool's name (``start_workers(name=...)``, ``jobq worker --name``).
    :param queues: the queues it takes jobs from.
    :param concurrency: its worker threads now (follows ``set_concurrency``).
    :param lease_seconds: its lease period in seconds.
    :param started_at: when it registered, epoch seconds.
    :param last_seen_at: its last heartbeat, epoch seconds (the database's clock
        on PostgreSQL).
    :param stopping: it was asked to stop and lets its running jobs finish.
    :param leased: jobs leased to it now: running, or claimed ahead and waiting
        for a thread.
    :param boot_id: its host's boot id, or None. :param pid_namespace: its pid
        namespace's inode, or None. :param process_start: its process's start time
        in clock ticks since boot, or None (see :class:`NewWorker`).
    :param threads: its busy threads and their jobs, as of its last heartbeat.
    """

    owner: str
    host: str
    pid: int
    name: str
    queues: tuple[str, ...]
    concurrency: int
    lease_seconds: float
    started_at: float
    last_seen_at: float
    stopping: bool
    leased: int = 0
    boot_id: str | None = None
    pid_namespace: int | None = None
    process_start: int | None = None
    threads: tuple[WorkerThread, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The pool as JSON-ready values (the monitor and ``jobq workers --json``)."""
        return {
            "owner": self.owner,
            "host": self.host,
            "pid": self.pid,
            "name": self.name,
            "queues": list(self.queues),
            "concurrency": self.concurrency,
            "lease_seconds": self.lease_seconds,
            "started_at": self.started_at,
            "last_seen_at": self.last_seen_at,
            "stopping": self.stopping,
            "leased": self.leased,
            "boot_id": self.boot_id,
            "pid_namespace": self.pid_namespace,
            "process_start": self.process_start,
            "threads": [thread.as_dict() for thread in self.threads],
        }


def worker_infos(rows: Iterable[Sequence[Any]], leased: Mapping[str, int]) -> list[WorkerInfo]:
    """Values of worker rows (columns :data:`WORKER_COLS`), with ``leased`` jobs per owner."""
    return [
        WorkerInfo(
            owner=str(owner),
            host=str(host),
            pid=int(pid),
            name=str(name),
            queues=tuple(json.loads(queues)),
            concurrency=int(concurrency),
            lease_seconds=float(lease_seconds),
            started_at=float(started_at),
            last_seen_at=float(last_seen_at),
            stopping=bool(stopping),
            leased=leased.get(str(owner), 0),
            boot_id=None if boot_id is None else str(boot_id),
            pid_namespace=None if pid_namespace is None else int(pid_namespace),
            process_start=None if process_start is None else int(process_start),
            threads=read_threads(threads),
        )
        for (
            owner,
            host,
            pid,
            name,
            queues,
            concurrency,
            lease_seconds,
            started_at,
            last_seen_at,
            stopping,
            boot_id,
            pid_namespace,
            process_start,
            threads,
        ) in rows
    ]


def queues_json(queues: Sequence[str]) -> str:
    """The queues column: a JSON list of names."""
    return json.dumps(list(queues))


@runtime_checkable
class WorkerRegistry(Protocol):
    """The live worker pools, shared by every process through the database."""

    def register_worker(self, worker: NewWorker, *, now: float) -> None:
        """Record ``worker`` as started and seen at ``now``, replacing any row of the
        same owner; also delete rows not seen for :data:`FORGET_WORKERS_AFTER`."""
        ...

    def worker_seen(
        self,
        owner: str,
        *,
        now: float,
        concurrency: int | None = None,
        stopping: bool = False,
        threads: Sequence[WorkerThread] | None = None,
    ) -> bool:
        """Mark ``owner`` seen at ``now`` (one UPDATE), with its current
        ``concurrency`` and busy ``threads`` if given and ``stopping`` flag. False
        if it has no row (deleted as long dead, or never registered): register it
        again."""
        ...

    def unregister_worker(self, owner: str) -> bool:
        """Delete ``owner``'s row (a clean stop). False if there was none."""
        ...

    def live_workers(self, *, now: float, max_age: float | None = None) -> list[WorkerInfo]:
        """The pools seen within ``max_age`` seconds before ``now`` (default: each
        pool's own lease period), by host, pid and name, each with the number of
        jobs leased to it (one grouped count of processing jobs)."""
        ...

    def host_workers(self, host: str, *, boot_id: str, pid_namespace: int) -> list[WorkerInfo]:
        """Every registered pool on ``host`` in this boot (``boot_id``) and pid
        namespace (``pid_namespace``), seen lately or not, by pid and name; one
        SELECT, without the ``leased`` counts (0)."""
        ...

    def release_owner(self, owner: str, *, started_at: float, now: float) -> RescueResult:
        """The pool ``owner``, registered at ``started_at``, is known dead: delete
        its row and release, at ``now``, the jobs still leased to it, as
        :meth:`~jobq.storage.base.Storage.rescue_expired` does with expired leases
        (the attempt counts; back to pending while attempts remain, else failed;
        cancelled if a cancel was requested), with ``error_type`` ``WorkerDied``.
        One transaction; nothing is done unless the row of ``owner`` is still the
        one registered at ``started_at`` (a new process with the same owner
        registers again first), and only jobs whose ``lease_owner`` is ``owner``
        are touched."""
        ...


class WorkerRows(Protocol):
    """The registry's SQL, as a backend runs it (arguments already checked)."""

    def register_worker(self, worker: NewWorker, now: float) -> None:
        """Upsert the row and delete long-dead ones, in one transaction."""
        ...

    def worker_seen(
        self, owner: str, now: float, concurrency: int | None, stopping: bool, threads: str | None
    ) -> bool:
        """Update the row (``threads`` as :func:`threads_json`); False if there is none."""
        ...

    def unregister_worker(self, owner: str) -> bool:
        """Delete the row; False if there was none."""
        ...

    def live_workers(self, now: float, max_age: float | None) -> list[WorkerInfo]:
        """The rows seen within ``max_age`` (or their own lease), with leased counts."""
        ...

    def host_workers(self, host: str, boot_id: str, pid_namespace: int) -> list[WorkerInfo]:
        """The rows of that host, boot and pid namespace."""
        ...

    def release_owner(self, owner: str, started_at: float, now: float) -> RescueResult:
        """Delete the row if registered at ``started_at``, and if so release its jobs."""
        ...


class CheckedWorkers(WorkerRegistry):
    """:class:`WorkerRegistry` with its arguments checked once, for every backend,
    before the backend's :class:`WorkerRows` part (``_workers``) runs its SQL."""

    _workers: WorkerRows

    def register_worker(self, worker: NewWorker, *, now: float) -> None:
        if not isinstance(worker, NewWorker):
            raise TypeError(f"worker must be a NewWorker, got {worker!r}")
        for label in ("owner", "host", "name"):
            if not isinstance(getattr(worker, label), str):
                raise TypeError(f"{label} must be a str, got {getattr(worker, label)!r}")
        if not worker.owner:
            raise ValueError("owner must not be empty")
        if isinstance(worker.queues, str) or not all(isinstance(q, str) for q in worker.queues):
            raise TypeError(f"queues must be a sequence of names, got {worker.queues!r}")
        check_count("pid", worker.pid, minimum=0)
        check_count("concurrency", worker.concurrency)
        check_seconds("lease_seconds", worker.lease_seconds)
        if worker.boot_id is not None and not isinstance(worker.boot_id, str):
            raise TypeError(f"boot_id must be a str or None, got {worker.boot_id!r}")
        for label in ("pid_namespace", "process_start"):
            if getattr(worker, label) is not None:
                check_count(label, getattr(worker, label), minimum=0)
        check_time("now", now)
        self._workers.register_worker(worker, now)

    def worker_seen(
        self,
        owner: str,
        *,
        now: float,
        concurrency: int | None = None,
        stopping: bool = False,
        threads: Sequence[WorkerThread] | None = None,
    ) -> bool:
        check_time("now", now)
        if concurrency is not None:
            check_count("concurrency", concurrency)
        column = None
        if threads is not None:
            if not all(isinstance(thread, WorkerThread) for thread in threads):
                raise TypeError(f"threads must be WorkerThread values, got {threads!r}")
            column = threads_json(threads)
        return self._workers.worker_seen(owner, now, concurrency, bool(stopping), column)

    def unregister_worker(self, owner: str) -> bool:
        return self._workers.unregister_worker(owner)

    def live_workers(self, *, now: float, max_age: float | None = None) -> list[WorkerInfo]:
        check_time("now", now)
        if max_age is not None:
            check_seconds("max_age", max_age)
        return self._workers.live_workers(now, max_age)

    def host_workers(self, host: str, *, boot_id: str, pid_namespace: int) -> list[WorkerInfo]:
        for label, value in (("host", host), ("boot_id", boot_id)):
            if not isinstance(value, str) or not value:
                raise TypeError(f"{label} must be a non-empty str, got {value!r}")
        check_count("pid_namespace", pid_namespace, minimum=0)
        return self._workers.host_workers(host, boot_id, pid_namespace)

    def release_owner(self, owner: str, *, started_at: float, now: float) -> RescueResult:
        if not isinstance(owner, str) or not owner:
            raise TypeError(f"owner must be a non-empty str, got {owner!r}")
        check_time("started_at", started_at)
        check_time("now", now)
        return self._workers.release_owner(owner, started_at, now)
