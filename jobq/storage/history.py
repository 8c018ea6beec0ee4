"""A job's history and the queues' throughput: the storage contract's piece for them.

- **Attempts that did not complete.** A job row keeps only its last error; every
  attempt that ended without completing also leaves a row of its own, written in
  the same transaction that ended it: ``fail()`` (outcome ``"failed"``), a rescue
  of a lapsed lease (``"lease_expired"``), the release of a dead worker process's
  jobs (``"worker_died"``) and ``finish_cancelled()``
  (``"cancelled"``). A completed attempt leaves none (the job row has its
  ``started_at`` and ``finished_at``), nor does a released one (it was given back
  unrun). The rows go with their job (purge, retention, any delete).
- **Throughput.** Jobs that ended ``completed`` and ``failed``, counted per
  minute and queue as they end, in the same transaction (one write per queue for
  a batch of completions), so a chart over the last day never scans the jobs
  table. Counters older than :data:`KEEP_COUNTERS_SECONDS` (2 days) before the
  newest one are deleted: on SQLite when a new minute row is created, on
  PostgreSQL when the job counts are folded (each rescue pass of the
  worker pools' upkeep, and purge).

:class:`JobHistory` is what a storage offers (both backends do);
:class:`HistoryStore` the part a backend implements (SQL only);
:class:`CheckedHistory` checks arguments once, above the backends.
:func:`timeline` builds a job's :class:`TimelineEvent` list from its row and attempts.

Rule: imports basic values only (``job``, ``validate``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..job import Job, JobError, JobStatus
from ..validate import check_time, is_int

__all__ = [
    "BUCKET_SECONDS",
    "KEEP_COUNTERS_SECONDS",
    "MAX_BUCKETS",
    "AttemptRecord",
    "CheckedHistory",
    "HistoryStore",
    "JobHistory",
    "ThroughputPoint",
    "TimelineEvent",
    "timeline",
]

KEEP_COUNTERS_SECONDS = 2 * 86400
"""Seconds of per-minute throughput counters kept (2 days)."""
BUCKET_SECONDS = (60, 3600)
"""The bucket sizes :meth:`JobHistory.throughput` accepts: a minute or an hour."""
MAX_BUCKETS = 10_000
"""The most buckets one throughput call may return."""

OUTCOMES = ("failed", "lease_expired", "worker_died", "cancelled")
"""How an attempt that did not complete ended."""


@dataclass(frozen=True)
class AttemptRecord:
    """An attempt of a job that ended without completing, as
    :meth:`jobq.DurableQueue.attempts` returns it.

    :param job_id: the job. :param attempt: its number, 1 for the first (a job
        run again with ``retry()`` counts from 1 again).
    :param lease_owner: the worker pool that ran it, ``host:pid:name``.
    :param started_at: when it was claimed (epoch seconds).
    :param ended_at: when it ended.
    :param outcome: ``"failed"`` (the task raised, or timed out),
        ``"lease_expired"`` (its worker stopped renewing the lease: killed, or
        stuck), ``"worker_died"`` (its worker's process was seen gone by another
        pool on the same host) or ``"cancelled"`` (cancelled while running).
    :param error: the error it ended with (type, message, traceback); None for a
        cancelled attempt.
    """

    job_id: int
    attempt: int
    lease_owner: str | None
    started_at: float | None
    ended_at: float
    outcome: str
    error: JobError | None

    def as_dict(self) -> dict[str, object]:
        """The attempt as JSON-ready values (``error`` as a dict or None)."""
        error = self.error
        return {
            "job_id": self.job_id,
            "attempt": self.attempt,
            "lease_owner": self.lease_owner,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "outcome": self.outcome,
            "error": None
            if error is None
            else {"type": error.type, "message": error.message, "traceback": error.traceback},
        }


@dataclass(frozen=True)
class ThroughputPoint:
    """Jobs that ended in one bucket of time: ``start`` (epoch seconds, a multiple
    of the bucket size), ``completed`` and ``failed`` (ended failed for good, not
    the failed attempts that were retried)."""

    start: float
    completed: int
    failed: int


@dataclass(frozen=True)
class TimelineEvent:
    """One thing that happened to a job, as :meth:`jobq.DurableQueue.timeline` lists them.

    :param at: when (epoch seconds).
    :param kind: ``"enqueued"``, ``"claimed"``, ``"failed"``, ``"lease_expired"``,
        ``"worker_died"``, ``"cancelled"``, ``"retry_scheduled"`` (the job waits for its next
        attempt) or ``"completed"``.
    :param detail: a short text: the worker, the error, when the retry runs.
    :param attempt: the attempt it belongs to; None for ``"enqueued"``.
    """

    at: float
    kind: str
    detail: str
    attempt: int | None


@runtime_checkable
class JobHistory(Protocol):
    """The calls a storage offers for job history and throughput."""

    def job_attempts(self, job_id: int) -> list[AttemptRecord]:
        """The job's attempts that ended without completing, oldest first; empty
        for an unknown job."""
        ...

    def throughput(
        self, *, since: float, until: float, bucket_seconds: int = 60, queue: str | None = None
    ) -> list[ThroughputPoint]:
        """Jobs that ended completed and failed per bucket of ``bucket_seconds``
        (60 or 3600), for every bucket overlapping ``[since, until)``, zeros
        included, oldest first; for one ``queue``, or all queues when None.
        Raises ValueError for a bad bucket, ``since > until`` or more than
        :data:`MAX_BUCKETS` buckets."""
        ...


class HistoryStore(Protocol):
    """What a backend provides for history: SQL only, on checked values."""

    def attempts(self, job_id: int) -> list[AttemptRecord]:
        """The job's attempt rows, oldest first."""
        ...

    def counts(
        self, first: int, end: int, bucket: int, queue: str | None
    ) -> list[tuple[int, int, int]]:
        """(bucket start, completed, failed) for buckets holding counts, minutes in
        ``[first, end)``."""
        ...


class CheckedHistory(JobHistory):
    """The history methods of :class:`~jobq.storage.checked.CheckedStorage`:
    arguments checked here, SQL run by the backend's :attr:`_history` part."""

    _history: HistoryStore

    def job_attempts(self, job_id: int) -> list[AttemptRecord]:
        if not (is_int(job_id) and 0 < job_id < 2**63):
            return []
        return self._history.attempts(job_id)

    def throughput(
        self, *, since: float, until: float, bucket_seconds: int = 60, queue: str | None = None
    ) -> list[ThroughputPoint]:
        check_time("since", since)
        check_time("until", until)
        if not is_int(bucket_seconds) or bucket_seconds not in BUCKET_SECONDS:
            raise ValueError(f"bucket_seconds must be 60 or 3600, got {bucket_seconds!r}")
        if queue is not None and not isinstance(queue, str):
            raise TypeError(f"queue must be a str or None, got {type(queue).__name__}")
        if since > until:
            raise ValueError(f"since ({since!r}) must not be after until ({until!r})")
        first = math.floor(since / bucket_seconds) * bucket_seconds
        end = max(first + bucket_seconds, math.ceil(until / bucket_seconds) * bucket_seconds)
        buckets = (end - first) // bucket_seconds
        if buckets > MAX_BUCKETS:
            raise ValueError(
                f"{buckets} buckets of {bucket_seconds} s asked; at most {MAX_BUCKETS}: "
                "ask for a shorter range or larger buckets"
            )
        found = {
            start: (c, f) for start, c, f in self._history.counts(first, end, bucket_seconds, queue)
        }
        return [
            ThroughputPoint(float(start), *found.get(start, (0, 0)))
            for start in range(first, end, bucket_seconds)
        ]


def attempt_record(row: Sequence[Any]) -> AttemptRecord:
    """An attempt from its row: job_id, attempt, lease_owner, started_at,
    ended_at, outcome, error_type, error_message, error_traceback."""
    job_id, attempt, owner, started, ended, outcome, etype, message, traceback = row
    error = None
    if etype is not None:
        error = JobError(str(etype), str(message or ""), traceback)
    started = None if started is None else float(started)
    return AttemptRecord(int(job_id), int(attempt), owner, started, float(ended), outcome, error)


def minute_of(now: float) -> int:
    """The start of the minute holding ``now`` (epoch seconds)."""
    return math.floor(now / 60) * 60


def _error_detail(error: JobError | None) -> str:
    if error is None:
        return ""
    return f"{error.type}: {error.message}" if error.message else error.type


def _attempt_events(record: AttemptRecord) -> list[TimelineEvent]:
    events = []
    if record.started_at is not None:
        events.append(
            TimelineEvent(record.started_at, "claimed", record.lease_owner or "", record.attempt)
        )
    detail = _error_detail(record.error)
    events.append(TimelineEvent(record.ended_at, record.outcome, detail, record.attempt))
    return events


def _last_attempt_events(
    job: Job, recorded: set[tuple[int, float]], last_outcome: str | None
) -> list[TimelineEvent]:
    """The events of the job's current or last attempt not already in its history."""
    events: list[TimelineEvent] = []
    if (
        job.started_at is not None
        and job.attempts
        and (job.attempts, job.started_at) not in recorded
    ):
        events.append(TimelineEvent(job.started_at, "claimed", job.lease_owner or "", job.attempts))
    end = _end_event(job, last_outcome)
    return events if end is None else [*events, end]


def _end_event(job: Job, last_outcome: str | None) -> TimelineEvent | None:
    """How the job ended or what it waits for, when its history does not say it."""
    status, attempt = job.status, job.attempts or None
    if status is JobStatus.COMPLETED and job.finished_at is not None:
        return TimelineEvent(job.finished_at, "completed", "", attempt)
    if status is JobStatus.PENDING and job.attempts:
        detail = f"attempt {job.attempts + 1} of {job.max_attempts}"
        return TimelineEvent(job.run_at, "retry_scheduled", detail, job.attempts + 1)
    if status is JobStatus.CANCELLED and job.finished_at is not None:
        if last_outcome == "cancelled":  # its attempt's end says it
            return None
        detail = _expired(job) or (
            "before it ran" if attempt is None else "its attempt ended, a cancel was asked"
        )
        return TimelineEvent(job.finished_at, "cancelled", detail, attempt)
    return None


def _expired(job: Job) -> str | None:
    """The message of a job ended by its expiry (jobq.expiry), else None."""
    error = job.error
    return error.message if error is not None and error.type == "Expired" else None


def timeline(job: Job, attempts: Sequence[AttemptRecord]) -> list[TimelineEvent]:
    """The job's events, oldest first: ``"enqueued"`` (``created_at``), then per
    attempt that did not complete its claim and its end (from ``attempts``), then
    the current or last attempt's claim (``started_at``) if not among them, and
    its end: ``"completed"``, or ``"retry_scheduled"`` for a job waiting to run
    again; ``"cancelled"`` for a job cancelled before it ran."""
    events = [TimelineEvent(job.created_at, "enqueued", f"queue {job.queue}", None)]
    recorded = set()
    for record in attempts:
        events += _attempt_events(record)
        if record.started_at is not None:
            recorded.add((record.attempt, record.started_at))
    last_outcome = attempts[-1].outcome if attempts else None
    events += _last_attempt_events(job, recorded, last_outcome)
    events.sort(key=lambda event: event.at)  # stable: equal times keep their order
    return events
