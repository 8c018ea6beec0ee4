"""The registry of live worker pools: the storage contract's piece for it.

Every worker pool, in any process on any host, keeps one row in the database
while it runs: it registers as it starts, its dispatcher marks it seen at each
heartbeat (one short UPDATE every third of a lease), and it unregisters on a
clean stop. A pool that was killed simply stops being seen: it is *live* while
seen within ``max_age`` seconds, by default its own lease period (the time
after which its jobs would be rescued as well). Rows not seen for
:data:`FORGET_WORKERS_AFTER` are deleted when another pool registers.

- :class:`WorkerInfo`: one live pool, as :meth:`WorkerRegistry.live_workers` returns it.
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

__all__ = [
    "FORGET_WORKERS_AFTER",
    "CheckedWorkers",
    "NewWorker",
    "WorkerInfo",
    "WorkerRegistry",
    "WorkerRows",
]

FORGET_WORKERS_AFTER = 86400.0
"""Seconds after which the row of a pool no longer seen is deleted (1 day)."""

WORKER_COLS = (
    "owner, host, pid, name, queues, concurrency, lease_seconds, started_at, last_seen_at, stopping"
)
"""The columns of a worker row, in the order :func:`worker_infos` reads them."""


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
    """

    owner: str
    host: str
    pid: int
    name: str
    queues: tuple[str, ...]
    concurrency: int
    lease_seconds: float


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
        self, owner: str, *, now: float, concurrency: int | None = None, stopping: bool = False
    ) -> bool:
        """Mark ``owner`` seen at ``now`` (one UPDATE), with its current
        ``concurrency`` if given and ``stopping`` flag. False if it has no row
        (deleted as long dead, or never registered): register it again."""
        ...

    def unregister_worker(self, owner: str) -> bool:
        """Delete ``owner``'s row (a clean stop). False if there was none."""
        ...

    def live_workers(self, *, now: float, max_age: float | None = None) -> list[WorkerInfo]:
        """The pools seen within ``max_age`` seconds before ``now`` (default: each
        pool's own lease period), by host, pid and name, each with the number of
        jobs leased to it (one grouped count of processing jobs)."""
        ...


class WorkerRows(Protocol):
    """The registry's SQL, as a backend runs it (arguments already checked)."""

    def register_worker(self, worker: NewWorker, now: float) -> None:
        """Upsert the row and delete long-dead ones, in one transaction."""
        ...

    def worker_seen(self, owner: str, now: float, concurrency: int | None, stopping: bool) -> bool:
        """Update the row; False if there is none."""
        ...

    def unregister_worker(self, owner: str) -> bool:
        """Delete the row; False if there was none."""
        ...

    def live_workers(self, now: float, max_age: float | None) -> list[WorkerInfo]:
        """The rows seen within ``max_age`` (or their own lease), with leased counts."""
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
        check_time("now", now)
        self._workers.register_worker(worker, now)

    def worker_seen(
        self, owner: str, *, now: float, concurrency: int | None = None, stopping: bool = False
    ) -> bool:
        check_time("now", now)
        if concurrency is not None:
            check_count("concurrency", concurrency)
        return self._workers.worker_seen(owner, now, concurrency, bool(stopping))

    def unregister_worker(self, owner: str) -> bool:
        return self._workers.unregister_worker(owner)

    def live_workers(self, *, now: float, max_age: float | None = None) -> list[WorkerInfo]:
        check_time("now", now)
        if max_age is not None:
            check_seconds("max_age", max_age)
        return self._workers.live_workers(now, max_age)
