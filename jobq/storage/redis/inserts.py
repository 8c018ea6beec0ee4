"""Jobs into Redis: one at a time, many in one script (all or none), and the bulk path.

The :class:`~jobq.storage.parts.Inserts` part of
:class:`~jobq.storage.redis.RedisStorage`; its arguments were checked by
:class:`~jobq.storage.checked.CheckedStorage`.

Rule: runs scripts only; imports this backend's server and the storage contract.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..base import Enqueued, NewJob
from .server import Arg, Server, text, to_job


def job_fields(job: NewJob) -> list[Arg]:
    """The 11 script arguments of one job (see the ``insert`` helper in :mod:`.lua`)."""
    return [
        job.queue,
        job.name,
        job.payload,
        job.priority,
        job.max_attempts,
        text(job.run_at),
        "" if job.unique_key is None else job.unique_key,
        text(job.expires_at),
        "" if job.limit_key is None else job.limit_key,
        job.on_duplicate,
        text(job.throttle),
    ]


class RedisInserts:
    """Stores new jobs in one Redis database."""

    def __init__(self, server: Server) -> None:
        self._server = server

    def enqueue(self, job: NewJob, now: float) -> Enqueued:
        ((created, replaced, flat),) = self._server.run("enqueue", now, "1", *job_fields(job))
        return Enqueued(to_job(flat), created == "1", replaced == "1")

    def enqueue_many(self, jobs: Sequence[NewJob], now: float) -> list[int]:
        # One script run: all or none, and no other client sees half of it.
        args = [arg for job in jobs for arg in job_fields(job)]
        return [int(i) for i in self._server.run("enqueue", now, "0", *args)]

    def enqueue_payloads(self, template: NewJob, payloads: Sequence[str], now: float) -> list[int]:
        return self.enqueue_many([template._replace(payload=p) for p in payloads], now)
