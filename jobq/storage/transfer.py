"""Moving waiting jobs from one storage to another, between any two backends
(SQLite, PostgreSQL, Redis), e.g. from a SQLite file to PostgreSQL or Redis when an
app outgrows one machine (``jobq move-jobs`` on the command line).

It uses only the storage contract (list, enqueue_many, request_cancel), so each
backend's own guarantees apply at each end; nothing of the move is atomic across
the two, which is why each batch is copied first and cancelled second.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from .base import Job, JobStatus, NewJob, Storage


@dataclass(frozen=True)
class MoveReport:
    """What :func:`move_pending_jobs` did.

    :param moved: jobs now waiting in the target, including scheduled ones.
    :param processing: jobs the source still has leased to a worker, left there.
    :param id_map: source job id -> target job id, for each job moved.
    """

    moved: int
    processing: int
    id_map: dict[int, int]


def move_pending_jobs(
    source: Storage, target: Storage, *, batch_size: int = 500, now: float | None = None
) -> MoveReport:
    """Copy every pending job (due or scheduled for later) of ``source`` into
    ``target``, then cancel it in ``source``, batch by batch, so running it again
    never copies a job twice.

    Each job keeps its queue, task name, arguments, priority, run time and unique
    key. Attempts already used are taken off ``max_attempts`` (at least one is
    left), so no job gets more tries in all. A job whose unique key a live job of
    the target holds is not copied (as any enqueue of it would not be): it is
    cancelled in the source and mapped to that job. Stop the source's workers first:
    jobs they hold (``processing``) are not moved, only counted.
    If the command is interrupted, at most the batch in flight may exist in both;
    nothing is lost. Only the jobs pending when it starts are moved, so giving
    the same database at both ends cannot copy a job again and again.

    Jobs waiting for others (``depends_on``, chains) and pending jobs of a batch
    are not moved: their dependencies and batches live in the source (cancelling a
    batch's jobs there would end the batch and enqueue its callbacks). Raises
    ValueError, moving nothing, while the source holds any: let them run, or
    cancel them, first. Checking for batches reads every pending job once more.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
    queues = source.stats(now=time.time() if now is None else now).queues.values()
    waiting = sum(queue.waiting for queue in queues)
    if waiting:
        raise ValueError(
            f"{waiting} job(s) of the source wait for other jobs to complete (depends_on, "
            "chains), which cannot move with them: let them run, or cancel them, then "
            "move the rest; nothing was moved"
        )
    newest = source.list_jobs(status=JobStatus.PENDING, newest_first=True, limit=1)
    last = newest[0].id if newest else 0
    in_batches = sum(
        job.batch_id is not None for page in _pending(source, last, batch_size) for job in page
    )
    if in_batches:
        raise ValueError(
            f"{in_batches} pending job(s) of the source belong to batches, which cannot "
            "move with them: let them run, or cancel their batches, then move the rest; "
            "nothing was moved"
        )
    id_map: dict[int, int] = {}
    for batch in _pending(source, last, batch_size):
        stamp = time.time() if now is None else now
        new_ids = target.enqueue_many(
            [
                NewJob(
                    job.name,
                    job.payload,
                    job.queue,
                    job.priority,
                    max(1, job.max_attempts - job.attempts),
                    job.run_at,
                    job.unique_key,
                    job.expires_at,
                    limit_key=job.limit_key,
                )
                for job in batch
            ],
            now=stamp,
        )
        for job, new_id in zip(batch, new_ids, strict=True):
            source.request_cancel(job.id, now=stamp)
            id_map[job.id] = new_id
    processing = sum(
        queue.counts[JobStatus.PROCESSING]
        for queue in source.stats(now=time.time() if now is None else now).queues.values()
    )
    return MoveReport(len(id_map), processing, id_map)


def _pending(source: Storage, last: int, size: int) -> Iterator[list[Job]]:
    """The pending jobs of ``source`` up to id ``last``, ``size`` at a time, by id.
    Each page is read when the one before has been used."""
    after: int | None = None
    while True:
        page = source.list_jobs(status=JobStatus.PENDING, after_id=after, limit=size)
        page = [job for job in page if job.id <= last]
        if not page:
            return
        yield page
        after = page[-1].id
