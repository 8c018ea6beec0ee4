"""The registry of live worker pools in Redis: a hash per pool (``worker:<owner>``),
the set of owners (``workers``), and per owner the set of jobs leased to it
(``owned:<owner>``, kept by the claim and by every end of a lease), which gives the
leased counts and the jobs to release when a pool is known dead.

The :class:`~jobq.storage.workers.WorkerRows` part of
:class:`~jobq.storage.redis.RedisStorage`; its arguments were checked by
:class:`~jobq.storage.workers.CheckedWorkers`. Times are the server's (with
``clock="database"``), as for leases.

Rule: runs scripts and reads only; imports this backend's server and the storage
contract.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..base import RescueResult
from ..workers import FORGET_WORKERS_AFTER, NewWorker, WorkerInfo, queues_json, worker_infos
from .server import Server, text

_COLUMNS = (
    "owner",
    "host",
    "pid",
    "name",
    "queues",
    "concurrency",
    "lease_seconds",
    "started_at",
    "last_seen_at",
    "stopping",
    "boot_id",
    "pid_namespace",
    "process_start",
    "threads",
)


def _row(h: Mapping[str, str]) -> tuple[object, ...]:
    """A pool's hash as a row of :data:`~jobq.storage.workers.WORKER_COLS`."""
    row = tuple(h.get(column) for column in _COLUMNS)
    stopping = _COLUMNS.index("stopping")
    return (*row[:stopping], h.get("stopping") == "1", *row[stopping + 1 :])


def _opt(value: object) -> str:
    return "" if value is None else str(value)


class RedisWorkers:
    """The worker pools registered in one Redis database."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._p = server.prefix

    def register_worker(self, worker: NewWorker, now: float) -> None:
        self._server.run(
            "register_worker",
            now,
            text(FORGET_WORKERS_AFTER),
            worker.owner,
            worker.host,
            worker.pid,
            worker.name,
            queues_json(worker.queues),
            worker.concurrency,
            text(worker.lease_seconds),
            _opt(worker.boot_id),
            _opt(worker.pid_namespace),
            _opt(worker.process_start),
        )

    def worker_seen(
        self, owner: str, now: float, concurrency: int | None, stopping: bool, threads: str | None
    ) -> bool:
        return bool(
            self._server.run(
                "worker_seen",
                now,
                owner,
                _opt(concurrency),
                "1" if stopping else "0",
                threads or "",
                "0" if threads is None else "1",
            )
        )

    def unregister_worker(self, owner: str) -> bool:
        return bool(self._server.run("unregister_worker", None, owner))

    def live_workers(self, now: float, max_age: float | None) -> list[WorkerInfo]:
        rows, leased = [], {}
        for flat, count in self._server.run("live_workers", now, text(max_age)):
            h = dict(zip(flat[::2], flat[1::2], strict=True))
            rows.append(_row(h))
            leased[h["owner"]] = int(count)
        infos = worker_infos(rows, leased)
        return sorted(infos, key=lambda info: (info.host, info.pid, info.name))

    def host_workers(self, host: str, boot_id: str, pid_namespace: int) -> list[WorkerInfo]:
        owners = sorted(self._server.members(f"{self._p}workers"))
        found = self._server.hashes([f"{self._p}worker:{owner}" for owner in owners])
        rows = [
            _row(h)
            for h in found
            if h
            and h["host"] == host
            and h.get("boot_id") == boot_id
            and h.get("pid_namespace") == str(pid_namespace)
        ]
        infos = worker_infos(rows, {})
        return sorted(infos, key=lambda info: (info.pid, info.name))

    def release_owner(self, owner: str, started_at: float, now: float) -> RescueResult:
        outcome: dict[str, list[int]] = {"pending": [], "failed": [], "cancelled": []}
        released = self._server.run("release_owner", now, owner, text(started_at))
        for job_id, status in sorted((int(i), s) for i, s in released):
            outcome[status].append(job_id)
        return RescueResult(
            tuple(outcome["pending"]), tuple(outcome["failed"]), tuple(outcome["cancelled"])
        )
