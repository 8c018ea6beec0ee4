"""Columns of a job row in SQL, and turning a row into a :class:`~jobq.job.Job`:
shared by every SQL backend, which keep the same column names and order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .base import Job, JobError, JobStatus, QueueStats, ScheduleState, Stats

COLS = (
    "id, queue, name, payload, priority, status, attempts, max_attempts, run_at, "
    "lease_owner, lease_token, lease_expires_at, error_type, error_message, error_traceback, "
    "result, progress, unique_key, cancel_requested, created_at, started_at, finished_at, "
    "updated_at"
)
STATUS = {status.value: status for status in JobStatus}
_STATUSES = tuple(JobStatus)
FINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


def row_to_job(r: tuple[Any, ...]) -> Job:
    """The job in a row of :data:`COLS`."""
    return Job(
        r[0], r[1], r[2], r[3], r[4], STATUS[r[5]], r[6], r[7], r[8], r[9], r[10], r[11],
        None if r[12] is None else JobError(r[12], r[13] or "", r[14]),
        r[15], r[16], r[17], bool(r[18]), r[19], r[20], r[21], r[22],
    )  # fmt: skip


def schedule_state(r: tuple[Any, ...]) -> ScheduleState:
    """The schedule in a row of name, spec, next_fire_at, last_fire_at, last_job_id,
    paused, updated_at."""
    return ScheduleState(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6])


def stats_from_rows(
    counts: Iterable[tuple[Any, ...]],
    due: Iterable[tuple[Any, ...]],
    recent: Mapping[str, int],
    paused: frozenset[str],
    now: float,
) -> Stats:
    """Stats from the rows of (queue, status, count), (queue, scheduled, oldest due
    run_at) and the finished-in-the-last-minute counts by status."""
    per_queue: dict[str, dict[JobStatus, int]] = {}
    for queue, status, count in counts:
        by_status = per_queue.get(queue)
        if by_status is None:  # iterating the enum itself costs more than the query
            by_status = per_queue[queue] = dict.fromkeys(_STATUSES, 0)
        by_status[STATUS[status]] = count
    timing = {queue: (scheduled, oldest) for queue, scheduled, oldest in due}
    queues: dict[str, QueueStats] = {}
    for queue, by_status in sorted(per_queue.items()):
        scheduled, oldest = timing.get(queue, (0, None))
        age = 0.0 if oldest is None else max(0.0, now - oldest)
        queues[queue] = QueueStats(by_status, int(scheduled or 0), age)
    return Stats(queues, int(recent.get("completed", 0)), int(recent.get("failed", 0)), paused)


def job_filters(
    status: JobStatus | None,
    queue: str | None,
    name: str | None,
    after_id: int | None,
    newest_first: bool,
    mark: str,
) -> tuple[list[str], list[Any]]:
    """The WHERE terms and parameters of ``list_jobs``; ``mark`` is the driver's
    parameter placeholder (``?`` or ``%s``)."""
    terms: list[str] = []
    params: list[Any] = []
    for column, value in (("status", status), ("queue", queue), ("name", name)):
        if value is not None:
            terms.append(f"{column} = {mark}")
            params.append(JobStatus(value).value if column == "status" else value)
    if after_id is not None:
        terms.append(f"id < {mark}" if newest_first else f"id > {mark}")
        params.append(after_id)
    return terms, params
