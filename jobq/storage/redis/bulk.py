"""Filters and bulk actions on Redis: a page of matches, a count, and retry, cancel or
delete of every match.

The :class:`~jobq.storage.bulk.BulkStore` part of
:class:`~jobq.storage.redis.RedisStorage`; its arguments were checked by
:class:`~jobq.storage.bulk.CheckedBulk`. Matches are found by walking an index of
ids (the status's, with one status, else every job's) in id order and checking the
other filters job by job, payload matches included, as the SQL backends do row by
row; each action then runs the job's own script (retry, cancel) or the delete
script on a batch of ids, so every change stays atomic and the counts right.

Rule: runs scripts and reads only; imports this backend's server and the storage
contract.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..base import Job, JobStatus
from ..bulk import BulkResult, JobFilter, JSONScalar, PayloadMatch
from .server import Server, to_job

WALK_CHUNK = 500
"""Ids read from an index at a time while walking the matches."""
_MISSING = object()


def _same(found: Any, value: JSONScalar) -> bool:
    """JSON equality as the SQL backends compare: types agree, numbers by value."""
    if value is None:
        return found is None
    if isinstance(value, bool) or isinstance(found, bool):
        return found is value
    if isinstance(value, str):
        return isinstance(found, str) and found == value
    return isinstance(found, (int, float)) and found == value


def _payload_matches(payload: str, terms: tuple[PayloadMatch, ...]) -> bool:
    try:
        document = json.loads(payload)
    except ValueError:
        return False
    kwargs = document.get("kwargs") if isinstance(document, dict) else None
    args = document.get("args") if isinstance(document, dict) else None
    for term in terms:
        found = kwargs.get(term.key, _MISSING) if isinstance(kwargs, dict) else _MISSING
        if found is not _MISSING and _same(found, term.value):
            continue
        position = term.position
        if (
            position is not None
            and isinstance(args, list)
            and position < len(args)
            and _same(args[position], term.value)
        ):
            continue
        return False
    return True


def matches(job: Job, f: JobFilter) -> bool:
    """Whether ``job`` passes every filter of ``f``."""
    return (
        (not f.statuses or job.status in f.statuses)
        and (f.queue is None or job.queue == f.queue)
        and (f.name is None or job.name == f.name)
        and (f.created_after is None or job.created_at >= f.created_after)
        and (f.created_before is None or job.created_at < f.created_before)
        and (f.updated_before is None or job.updated_at < f.updated_before)
        and (not f.payload or _payload_matches(job.payload, f.payload))
    )


class RedisBulk:
    """Filters and bulk actions on the jobs of one Redis database."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._p = server.prefix

    def _walk(self, f: JobFilter, after_id: int | None, newest_first: bool) -> Iterator[Job]:
        """The jobs matching ``f``, in id order, read off an index chunk by chunk."""
        (status,) = f.statuses if len(f.statuses) == 1 else (None,)
        index = f"{self._p}status:{status.value}" if status else f"{self._p}all"
        cursor = after_id
        while True:
            ids = self._server.ids(index, cursor, WALK_CHUNK, descending=newest_first)
            if not ids:
                return
            cursor = int(ids[-1])
            for found in self._server.hashes([f"{self._p}job:{i}" for i in ids]):
                if found:  # gone meanwhile: left out
                    job = to_job(found)
                    if matches(job, f):
                        yield job
            if len(ids) < WALK_CHUNK:
                return

    def find(self, f: JobFilter, after_id: int | None, limit: int, newest_first: bool) -> list[Job]:
        found: list[Job] = []
        for job in self._walk(f, after_id, newest_first):
            found.append(job)
            if len(found) == limit:
                break
        return found

    def count(self, f: JobFilter) -> int:
        return sum(1 for _ in self._walk(f, None, False))

    def retry(self, f: JobFilter, now: float, batch_size: int) -> BulkResult:
        changed = skipped = 0
        for job in self._walk(f, None, False):  # oldest first: it keeps a shared key
            answer = self._server.run("retry", now, job.id, "")
            if answer is not None:
                changed += answer[0] == "ok"
                skipped += answer[0] == "conflict"
        return BulkResult(changed, skipped)

    def cancel(self, f: JobFilter, now: float, batch_size: int) -> BulkResult:
        changed = 0
        for job in self._walk(f, None, False):
            if job.status is JobStatus.PROCESSING and job.cancel_requested:
                continue  # asked already: not counted again
            after = self._server.run("cancel", now, job.id)
            changed += after is not None and job.status in (JobStatus.PENDING, JobStatus.PROCESSING)
        return BulkResult(changed)

    def delete(self, f: JobFilter, now: float, batch_size: int) -> BulkResult:
        deleted = 0
        batch: list[int] = []
        for job in self._walk(f, None, False):
            batch.append(job.id)
            if len(batch) == batch_size:
                deleted += int(self._server.run("delete", now, *batch))
                batch = []
        if batch:
            deleted += int(self._server.run("delete", now, *batch))
        return BulkResult(deleted)
