"""Jobs into Redis: one at a time, many in one script (all or none), and the bulk path.

The :class:`~jobq.storage.parts.Inserts` part of
:class:`~jobq.storage.redis.RedisStorage`; its arguments were checked by
:class:`~jobq.storage.checked.CheckedStorage`.

Rule: runs scripts only; imports this backend's server and the storage contract.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ...job import make_job
from ..base import Enqueued, Job, JobStatus, NewJob
from .server import Arg, Server, text, to_job

_PLAIN = NewJob("", "")[11:]
"""The fields past the 11 that :func:`job_fields` sends, as a job without them has
them: such a job's stored hash holds nothing the caller does not know."""


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
        if job[11:] != _PLAIN:
            ((created, replaced, flat),) = self._server.run("enqueue", now, "1", *job_fields(job))
            return Enqueued(to_job(flat), created == "1", replaced == "1")
        # A new job comes back as its id and the time stored (a smaller reply, and
        # none of the hash to parse); an existing one, whole.
        ((created, replaced, *rest),) = self._server.run("enqueue", now, "2", *job_fields(job))
        if created != "1":
            return Enqueued(to_job(rest[0]), False, replaced == "1")
        return Enqueued(stored(job, int(rest[0]), float(rest[1])), True, False)

    def enqueue_many(self, jobs: Sequence[NewJob], now: float) -> list[int]:
        # One script run: all or none, and no other client sees half of it. The
        # fields go as one JSON text (the client packs one argument, not 11 a job)
        # and the ids come back as one. The script writes each key many jobs share
        # once per call, not once per job (see :mod:`.lua_bulk`).
        if not jobs:
            return []
        fields = [str(arg) for job in jobs for arg in job_fields(job)]
        ids = self._server.run("enqueue_many", now, json.dumps(fields, ensure_ascii=False))
        return [int(i) for i in json.loads(ids)]

    def enqueue_payloads(self, template: NewJob, payloads: Sequence[str], now: float) -> list[int]:
        # The template's fields once and the payloads as one JSON array: no job to
        # build per payload, here or in the script.
        if not payloads:
            return []
        fields = json.dumps([str(arg) for arg in job_fields(template)], ensure_ascii=False)
        ids = self._server.run(
            "enqueue_many", now, fields, json.dumps(list(payloads), ensure_ascii=False)
        )
        return [int(i) for i in json.loads(ids)]


def stored(job: NewJob, job_id: int, at: float) -> Job:
    """The job just stored from ``job`` with no more than its 11 fields, as reading
    its hash back would give it: pending, created and updated ``at``."""
    return make_job(
        job_id,
        job.queue,
        job.name,
        job.payload,
        int(job.priority),
        JobStatus.PENDING,
        0,
        int(job.max_attempts),
        at if job.run_at is None else float(job.run_at),
        None,
        None,
        None,
        None,
        None,
        None,
        job.unique_key,
        False,
        at,
        None,
        None,
        at,
        None if job.expires_at is None else float(job.expires_at),
        job.limit_key,
    )
