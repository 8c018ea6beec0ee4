"""A job's attempts and timeline, and the queues' throughput, through the queue's
API (``queue.attempts``, ``queue.timeline``, ``queue.throughput``) after real runs:
a worker pool, and ``run_until_empty`` with an injected clock."""

from __future__ import annotations

import threading

import pytest

import jobq
from jobq import AttemptRecord, JobNotFound, JobStatus, ThroughputPoint, TimelineEvent
from jobq.testing import FakeClock
from tests.helpers import BOUNDED_WAIT, MakeQueue, eventually

T0 = 1_800_000_000.0  # the start of a minute


def test_each_failed_attempt_keeps_its_error_and_the_timeline_tells_the_story(
    make_queue: MakeQueue,
) -> None:
    clock = FakeClock(T0)
    queue = make_queue(clock=clock)

    @queue.task("send", max_attempts=3, backoff=10)
    def send(to: str) -> str:
        if jobq.current_job().attempt < 3:
            raise ConnectionError(f"{to} refused")
        return "sent"

    job = send.enqueue("smtp.example.com")
    clock.advance(1)
    assert queue.run_until_empty() == 1
    clock.advance(10)
    assert queue.run_until_empty() == 1
    pending = queue.timeline(job.id)
    assert pending[-1] == TimelineEvent(T0 + 21, "retry_scheduled", "attempt 3 of 3", 3)
    clock.advance(10)
    assert queue.run_until_empty() == 1
    assert queue.get(job.id).status is JobStatus.COMPLETED

    attempts = queue.attempts(job.id)
    assert [(a.attempt, a.started_at, a.ended_at, a.outcome) for a in attempts] == [
        (1, T0 + 1, T0 + 1, "failed"),
        (2, T0 + 11, T0 + 11, "failed"),
    ]
    for attempt in attempts:
        assert isinstance(attempt, AttemptRecord)
        assert attempt.error is not None
        assert (attempt.error.type, attempt.error.message) == (
            "ConnectionError",
            "smtp.example.com refused",
        )
        assert "raise ConnectionError" in (attempt.error.traceback or "")
        assert attempt.lease_owner is not None
        assert attempt.lease_owner.count(":") >= 2  # host:pid:name

    kinds = [(event.kind, event.attempt, event.at) for event in queue.timeline(job.id)]
    assert kinds == [
        ("enqueued", None, T0),
        ("claimed", 1, T0 + 1),
        ("failed", 1, T0 + 1),
        ("claimed", 2, T0 + 11),
        ("failed", 2, T0 + 11),
        ("claimed", 3, T0 + 21),
        ("completed", 3, T0 + 21),
    ]
    assert queue.timeline(job.id)[2].detail == "ConnectionError: smtp.example.com refused"

    # Only the end counts: one completed job, no failed one (its attempts were retried).
    assert queue.throughput(last=20) == [ThroughputPoint(T0, 1, 0)]


def test_throughput_per_queue_and_per_hour(make_queue: MakeQueue) -> None:
    clock = FakeClock(T0 + 30)
    queue = make_queue(clock=clock)

    @queue.task("ok", queue="fast")
    def ok() -> None:
        pass

    @queue.task("broken", max_attempts=1)
    def broken() -> None:
        raise ValueError("no")

    for _ in range(3):
        ok.enqueue()
    broken.enqueue()
    assert queue.run_until_empty() == 4
    clock.advance(60)
    ok.enqueue()
    assert queue.run_until_empty() == 1

    assert queue.throughput(last=120) == [
        ThroughputPoint(T0 - 60, 0, 0),
        ThroughputPoint(T0, 3, 1),
        ThroughputPoint(T0 + 60, 1, 0),
    ]
    assert queue.throughput(last=60, queue="fast") == [
        ThroughputPoint(T0, 3, 0),
        ThroughputPoint(T0 + 60, 1, 0),
    ]
    hour = T0 - T0 % 3600
    (point,) = queue.throughput(last=60, bucket=3600)
    assert point == ThroughputPoint(hour, 4, 1)
    with pytest.raises(ValueError, match="bucket must be 60 or 3600"):
        queue.throughput(bucket=120)
    with pytest.raises(ValueError, match="last must be"):
        queue.throughput(last=0)


def test_a_job_cancelled_while_running_under_a_pool(make_queue: MakeQueue) -> None:
    queue = make_queue(lease_seconds=0.3, poll_interval=0.005)
    started = threading.Event()

    @queue.task("slow")
    def slow() -> None:
        started.set()
        assert jobq.current_job().wait_for_cancel(BOUNDED_WAIT), "cancel never arrived"

    job = slow.enqueue()
    pool = queue.start_workers(concurrency=1)
    try:
        assert started.wait(BOUNDED_WAIT)
        queue.cancel(job.id)
        eventually(lambda: queue.get(job.id).status is JobStatus.CANCELLED)
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)
    (attempt,) = queue.attempts(job.id)
    assert attempt.outcome == "cancelled"
    assert attempt.error is None
    assert queue.timeline(job.id)[-1].kind == "cancelled"


def test_unknown_jobs_are_refused(make_queue: MakeQueue) -> None:
    queue = make_queue()
    with pytest.raises(JobNotFound):
        queue.attempts(123456)
    with pytest.raises(JobNotFound):
        queue.timeline(123456)
