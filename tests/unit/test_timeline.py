"""``jobq.storage.history.timeline``: a job's events from its row and its attempts
that did not complete, for each way a job can stand or end."""

from __future__ import annotations

import dataclasses

from jobq.job import Job, JobError, JobStatus
from jobq.storage.history import AttemptRecord, TimelineEvent, timeline

T0 = 1_000_000.0
BOOM = JobError("ValueError", "boom", "Traceback ...")
PENDING = Job(
    1, "mail", "send", "[]", 0, JobStatus.PENDING, 0, 3, T0, None, None, None, None, None, None,
    None, False, T0, None, None, T0,
)  # fmt: skip


def _job(**changes: object) -> Job:
    return dataclasses.replace(PENDING, **changes)  # type: ignore[arg-type]


def _failed(attempt: int, start: float, outcome: str = "failed") -> AttemptRecord:
    error = None if outcome == "cancelled" else BOOM
    return AttemptRecord(1, attempt, "h:1:p", start, start + 1, outcome, error)


def _kinds(events: list[TimelineEvent]) -> list[tuple[str, int | None]]:
    return [(event.kind, event.attempt) for event in events]


def test_a_new_job_was_only_enqueued() -> None:
    assert timeline(PENDING, []) == [TimelineEvent(T0, "enqueued", "queue mail", None)]


def test_a_running_job_shows_its_claim_and_a_waiting_one_its_retry() -> None:
    running = _job(status=JobStatus.PROCESSING, attempts=2, started_at=T0 + 20, lease_owner="w")
    assert _kinds(timeline(running, [_failed(1, T0 + 10)])) == [
        ("enqueued", None),
        ("claimed", 1),
        ("failed", 1),
        ("claimed", 2),
    ]
    waiting = _job(attempts=1, started_at=T0 + 10, run_at=T0 + 40)
    events = timeline(waiting, [_failed(1, T0 + 10)])
    assert events[-1] == TimelineEvent(T0 + 40, "retry_scheduled", "attempt 2 of 3", 2)
    assert len(events) == 4  # the claim comes from the history, not twice


def test_ends_completed_failed_and_cancelled() -> None:
    done = _job(status=JobStatus.COMPLETED, attempts=1, started_at=T0 + 1, finished_at=T0 + 2)
    assert _kinds(timeline(done, [])) == [("enqueued", None), ("claimed", 1), ("completed", 1)]
    failed = _job(status=JobStatus.FAILED, attempts=1, started_at=T0 + 1, finished_at=T0 + 2)
    assert _kinds(timeline(failed, [_failed(1, T0 + 1)])) == [
        ("enqueued", None),
        ("claimed", 1),
        ("failed", 1),
    ]
    before = _job(status=JobStatus.CANCELLED, finished_at=T0 + 5)
    assert timeline(before, [])[-1] == TimelineEvent(T0 + 5, "cancelled", "before it ran", None)
    running = _job(status=JobStatus.CANCELLED, attempts=1, started_at=T0 + 1, finished_at=T0 + 2)
    assert _kinds(timeline(running, [_failed(1, T0 + 1, "cancelled")])) == [
        ("enqueued", None),
        ("claimed", 1),
        ("cancelled", 1),
    ]
    # Cancel asked while running, then the attempt failed: the job ends cancelled.
    assert _kinds(timeline(running, [_failed(1, T0 + 1)]))[-2:] == [("failed", 1), ("cancelled", 1)]
