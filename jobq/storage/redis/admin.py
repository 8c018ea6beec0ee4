"""Reading and managing jobs and queues in Redis: cancel, retry, get, list, stats,
purge, pause.

The :class:`~jobq.storage.parts.Admin` part of
:class:`~jobq.storage.redis.RedisStorage`, away from the workers' hot path; its
arguments were checked by :class:`~jobq.storage.checked.CheckedStorage`.

Rule: runs scripts and reads only; imports this backend's server and the storage
contract.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..base import (
    MAX_PAUSED_QUEUES,
    Job,
    JobStatus,
    QueueStats,
    Stats,
    TooManyPausedQueues,
    UniqueKeyConflict,
)
from .server import Server, text, to_job

_STATUS = {status.value: status for status in JobStatus}
LIST_CHUNK = 500
"""Ids read from an index at a time while a listing filters by queue or name."""


class RedisAdmin:
    """Reads and manages the jobs and queues of one Redis database."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._p = server.prefix

    def request_cancel(self, job_id: int, now: float) -> Job | None:
        flat = self._server.run("cancel", now, job_id)
        return None if flat is None else to_job(flat)

    def retry(self, job_id: int, now: float, run_at: float | None) -> Job | None:
        answer = self._server.run("retry", now, job_id, text(run_at))
        if answer is None:
            return None
        if answer[0] == "conflict":
            raise UniqueKeyConflict(answer[1], int(answer[2]))
        return to_job(answer[1])

    def get(self, job_id: int) -> Job | None:
        (found,) = self._server.hashes([f"{self._p}job:{job_id}"])
        return to_job(found) if found else None

    def _many(self, ids: Sequence[str]) -> list[Job]:
        hashes = self._server.hashes([f"{self._p}job:{job_id}" for job_id in ids])
        return [to_job(h) for h in hashes if h]  # a job purged meanwhile is left out

    def list_jobs(
        self,
        status: JobStatus | None,
        queue: str | None,
        name: str | None,
        after_id: int | None,
        limit: int,
        newest_first: bool,
    ) -> list[Job]:
        index = f"{self._p}status:{JobStatus(status).value}" if status else f"{self._p}all"
        filtered = queue is not None or name is not None
        chunk = LIST_CHUNK if filtered else limit
        found: list[Job] = []
        cursor = after_id
        while len(found) < limit:
            ids = self._server.ids(index, cursor, chunk, descending=newest_first)
            if not ids:
                break
            cursor = int(ids[-1])
            for job in self._many(ids):
                if (queue is None or job.queue == queue) and (name is None or job.name == name):
                    found.append(job)
            if len(ids) < chunk:
                break
        return found[:limit]

    def stats(self, now: float) -> Stats:
        moment, paused, completed, failed, per = self._server.run("stats", now)
        at = float(moment)
        queues: dict[str, QueueStats] = {}
        for queue, flat, scheduled, oldest, waiting in sorted(per):
            counts = dict.fromkeys(JobStatus, 0)
            for status, count in zip(flat[::2], flat[1::2], strict=True):
                counts[_STATUS[status]] = int(count)
            if not any(counts.values()):
                continue
            age = 0.0 if oldest == "" else max(0.0, at - float(oldest))
            queues[queue] = QueueStats(counts, int(scheduled), age, int(waiting))
        return Stats(queues, int(completed), int(failed), frozenset(paused))

    def oldest_runnable_age(self, now: float) -> float:
        oldest, moment = self._server.run("oldest_due", now)
        return 0.0 if oldest == "" else max(0.0, float(moment) - float(oldest))

    def purge(self, older_than: float, statuses: Sequence[JobStatus], batch_size: int) -> int:
        total = 0
        for status in statuses:
            while True:
                deleted = int(
                    self._server.run("purge", None, status.value, text(older_than), batch_size)
                )
                total += deleted
                if deleted < batch_size:
                    break
        # Then the finished batches left with no job (lua_batches.PURGE); not counted.
        while self._server.run("batch_purge", None, text(older_than), batch_size) == batch_size:
            pass
        return total

    def pause(self, queue: str, now: float) -> None:
        if not self._server.run("pause", now, queue, MAX_PAUSED_QUEUES):
            raise TooManyPausedQueues(queue, MAX_PAUSED_QUEUES)

    def resume(self, queue: str) -> None:
        self._server.run("resume", None, queue)  # wakes the pools of any host

    def paused_queues(self) -> frozenset[str]:
        return frozenset(self._server.members(f"{self._p}paused"))
