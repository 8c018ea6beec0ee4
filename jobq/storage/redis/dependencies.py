"""Dependencies and chains on Redis: enqueue jobs that wait for others, and list the
edges.

What happens when a dependency ends is done by the script that ends it (the hooks
of :mod:`.lua_dependencies` in the shared ``finish`` and ``drop``), so a
completion and the release of its dependents are one atomic change, whichever path
ended the job.

The :class:`~jobq.storage.dependencies.DependencyStore` part of
:class:`~jobq.storage.redis.RedisStorage`; arguments were checked by
:class:`~jobq.storage.checked.CheckedStorage` (no unique keys, valid ids and
policies).

Rule: runs scripts and reads only; imports this backend's server and inserts, the
storage contract and its errors.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import UnknownDependency
from ..base import NewJob
from .inserts import job_fields
from .server import Arg, Server

EDGES_CHUNK = 1000
"""Ids read at a time while listing a job's dependencies or dependents."""


def dependent_fields(job: NewJob) -> list[Arg]:
    """The script arguments of one job of ``enqueue_dependent`` (see
    :data:`~jobq.storage.redis.lua_dependencies.ENQUEUE_DEPENDENT`)."""
    return [
        *job_fields(job),
        job.on_dependency_failure,
        "1" if job.takes_result else "0",
        len(job.depends_on),
        *job.depends_on,
    ]


class RedisDependencies:
    """Stores jobs with dependencies in one Redis database."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._p = server.prefix

    def enqueue(self, jobs: Sequence[NewJob], now: float, chain: bool) -> list[int]:
        args = [arg for job in jobs for arg in dependent_fields(job)]
        answer = self._server.run("enqueue_dependent", now, "1" if chain else "0", *args)
        if answer[0] == "unknown":
            raise UnknownDependency([int(i) for i in answer[1:]])
        return [int(i) for i in answer[1:]]

    def _edges(self, key: str) -> list[int]:
        found: list[int] = []
        cursor: int | None = None
        while True:
            ids = [int(i) for i in self._server.ids(key, cursor, EDGES_CHUNK, descending=False)]
            found.extend(ids)
            if len(ids) < EDGES_CHUNK:
                return found
            cursor = ids[-1]

    def dependencies_of(self, job_id: int) -> list[int]:
        return self._edges(f"{self._p}deps:{job_id}")

    def dependents_of(self, job_id: int) -> list[int]:
        return self._edges(f"{self._p}dependents:{job_id}")
