"""A pool's row in the registry of live worker pools (:mod:`jobq.storage.workers`).

:class:`Presence` is one more service of the pool's dispatcher, at the
heartbeat's pace (every third of a lease) and woken for it, so that an idle
pool is seen too: it registers the pool at the first run (with its process's
identity, :mod:`jobq.worker.identity`), then marks it seen with one short
UPDATE that also writes what each busy thread runs, at once when the pool's
concurrency or stopping state changed; :meth:`Presence.close` deletes the row on
a clean stop. A storage without the registry (one of a user's own) is left alone.

Rule: imports basic values, storage and the services; never the pool or :mod:`jobq.queue`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..storage.workers import NewWorker, WorkerRegistry, WorkerThread
from .host import QueueHost
from .identity import this_process
from .services import HEARTBEATS_PER_LEASE, Service

logger = logging.getLogger("jobq.worker")

PoolState = Callable[[], "tuple[int, bool]"]
"""The pool's current ``(concurrency, stopping)``."""

Running = Callable[[], Sequence[Mapping[str, Any]]]
"""What the pool's busy threads run, as :meth:`jobq.worker.pool.WorkerPool.running` says."""


def worker_threads(running: Sequence[Mapping[str, Any]]) -> tuple[WorkerThread, ...]:
    """The registry's values of :meth:`~jobq.worker.pool.WorkerPool.running`'s threads
    (those that started)."""
    return tuple(
        WorkerThread(
            job_id=int(item["id"]),
            task=str(item["name"]),
            thread=str(item["thread"]),
            started_at=float(item["started_at"]),
            stuck_since=None if item.get("stuck_since") is None else float(item["stuck_since"]),
        )
        for item in running
        if item.get("started_at") is not None and item.get("thread") is not None
    )


def pool_owner(name: str) -> str:
    """The lease owner of a pool of this process: ``host:pid:name``."""
    return f"{socket.gethostname()}:{os.getpid()}:{name}"


class Presence(Service):
    """Keeps the pool ``owner`` registered as live while its dispatcher runs.

    :param owner: the pool's lease owner (``host:pid:name``, see :func:`pool_owner`).
    :param name: the pool's name. :param queues: the queues it takes jobs from.
    :param state: returns the pool's ``(concurrency, stopping)`` now.
    :param running: returns what its busy threads run now (written at each run).
    """

    punctual = True  # an idle pool must still be seen before its lease period ends

    def __init__(
        self,
        host: QueueHost,
        *,
        next_run: float,
        owner: str,
        name: str,
        queues: Sequence[str],
        state: PoolState,
        running: Running = tuple,
    ) -> None:
        super().__init__(host, next_run=next_run)
        self.owner = owner
        self.name = name
        self.queues = tuple(queues)
        self.state = state
        self.running = running
        self.reported: tuple[int, bool] | None = None  # None: not registered yet
        storage = host.storage
        self.registry = storage if isinstance(storage, WorkerRegistry) else None

    @property
    def interval(self) -> float:
        return self.host.lease_seconds / HEARTBEATS_PER_LEASE

    @property
    def active(self) -> bool:
        return self.registry is not None

    def tick(self, now: float) -> bool:
        """Run when due, and also at once when the pool's state changed."""
        if self.active and self.reported is not None and self.state() != self.reported:
            self.next_run = min(self.next_run, now)
        return super().tick(now)

    def run_once(self, now: float) -> bool:
        """Register the pool, or mark it seen; True if it had to (re)register."""
        if self.registry is None:
            return False
        concurrency, stopping = state = self.state()
        threads = worker_threads(self.running())
        if self.reported is not None and self.registry.worker_seen(
            self.owner, now=now, concurrency=concurrency, stopping=stopping, threads=threads
        ):
            self.reported = state
            return False
        me = this_process()
        self.registry.register_worker(
            NewWorker(
                owner=self.owner,
                host=socket.gethostname(),
                pid=os.getpid(),
                name=self.name,
                queues=self.queues,
                concurrency=concurrency,
                lease_seconds=self.host.lease_seconds,
                boot_id=me.boot_id,
                pid_namespace=me.pid_namespace,
                process_start=me.process_start,
            ),
            now=now,
        )
        if stopping or threads:
            self.registry.worker_seen(self.owner, now=now, stopping=stopping, threads=threads)
        self.reported = state
        return True

    def close(self) -> None:
        """Delete the pool's row (a clean stop); errors are logged, not raised: the
        row then ages out like a killed pool's."""
        if self.registry is None or self.reported is None:
            return
        try:
            self.registry.unregister_worker(self.owner)
        except Exception:
            logger.exception("jobq worker pool %s: could not unregister", self.name)
        self.reported = None
