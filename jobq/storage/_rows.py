"""The columns of a job row and of a schedule row, and turning rows into values:
shared by the SQL backends, whose tables keep these column names.

:class:`JobRow` is the one list of a job's columns: every statement that reads
a job selects :data:`COLS` (its fields, in order), each backend makes a
:class:`JobRow` of what the driver returns, and everything after reads the row
by column name. A new job column is added here (and to each backend's schema).

Rule: imports only the storage contract (:mod:`jobq.storage.base`), never a
backend or a driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any, NamedTuple

from ..job import make_job
from .base import Job, JobError, JobStatus, QueueStats, ScheduleState, Stats


class JobRow(NamedTuple):
    """A row of the jobs table, as every backend selects it (:data:`COLS`)."""

    id: int
    queue: str
    name: str
    payload: str
    priority: int
    status: str
    attempts: int
    max_attempts: int
    run_at: float
    lease_owner: str | None
    lease_token: str | None
    lease_expires_at: float | None
    error_type: str | None
    error_message: str | None
    error_traceback: str | None
    result: str | None
    progress: str | None
    unique_key: str | None
    cancel_requested: Any  # SQLite's 0/1 or PostgreSQL's boolean
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    expires_at: float | None
    limit_key: str | None
    batch_id: int | None


JOB_COLUMNS: tuple[str, ...] = JobRow._fields
"""The job columns, in the order every job query selects them."""
COLS = ", ".join(JOB_COLUMNS)
""":data:`JOB_COLUMNS` as a SELECT list."""


class ScheduleRow(NamedTuple):
    """A row of the schedules table, as every backend selects it (:data:`SCHEDULE_COLS`)."""

    name: str
    spec: str
    next_fire_at: float
    last_fire_at: float | None
    last_job_id: int | None
    paused: Any  # SQLite's 0/1 or PostgreSQL's boolean
    updated_at: float


SCHEDULE_COLS = ", ".join(ScheduleRow._fields)
""":class:`ScheduleRow`'s columns as a SELECT list."""

STATUS = {status.value: status for status in JobStatus}
_STATUSES = tuple(JobStatus)
FINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


job_row: Callable[[Iterable[Any]], JobRow] = partial(tuple.__new__, JobRow)
"""A driver's row of :data:`COLS` as a :class:`JobRow` (``JobRow._make`` without
its Python frame: it runs for every job read)."""


def job_rows(rows: Iterable[Iterable[Any]]) -> list[JobRow]:
    """The driver's rows of :data:`COLS` as :class:`JobRow`."""
    return list(map(job_row, rows))


def row_to_job(r: JobRow) -> Job:
    """The job in a row."""
    return make_job(
        r.id,
        r.queue,
        r.name,
        r.payload,
        r.priority,
        STATUS[r.status],
        r.attempts,
        r.max_attempts,
        r.run_at,
        r.lease_owner,
        r.lease_token,
        r.lease_expires_at,
        None
        if r.error_type is None
        else JobError(r.error_type, r.error_message or "", r.error_traceback),
        r.result,
        r.progress,
        r.unique_key,
        bool(r.cancel_requested),
        r.created_at,
        r.started_at,
        r.finished_at,
        r.updated_at,
        r.expires_at,
        r.limit_key,
        r.batch_id,
    )


def schedule_state(r: ScheduleRow) -> ScheduleState:
    """The schedule in a row."""
    return ScheduleState(
        r.name, r.spec, r.next_fire_at, r.last_fire_at, r.last_job_id, bool(r.paused), r.updated_at
    )


def schedule_states(rows: Iterable[Iterable[Any]]) -> list[ScheduleState]:
    """The driver's rows of :data:`SCHEDULE_COLS` as :class:`ScheduleState`."""
    return [schedule_state(ScheduleRow._make(row)) for row in rows]


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
