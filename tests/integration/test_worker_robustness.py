"""Whatever a task does, the worker pool keeps its threads, its leases and its limits.

Real threads on a real SQLite file; time past a task's timeout comes from a FakeClock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from jobq import DurableQueue, JobError, JobStatus, Task, signals
from jobq.testing import FakeClock
from jobq.worker.failures import error_of
from tests.helpers import BOUNDED_WAIT, MakeQueue, eventually

START = 1_800_000_000.0


def wait_status(queue: DurableQueue, job_id: int, status: JobStatus) -> None:
    eventually(lambda: queue.get(job_id).status is status)


def worker_threads(pool_name: str) -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith(f"jobq-{pool_name}-worker") and t.is_alive()
    ]


# -- item: whatever a task returns or raises ends the attempt readably ------------------


def error_of_bad_job_then_a_fine_one(queue: DurableQueue, bad: Task[[], Any]) -> JobError:
    """Run ``bad`` (one attempt), then a fine job, on a pool of one thread: the bad job
    must fail and the same thread must still run the fine one. Return the bad job's error."""

    @queue.task("fine")
    def fine() -> str:
        return "fine"

    bad_job = bad.enqueue()
    good = fine.enqueue()
    pool = queue.start_workers(concurrency=1, prefetch=1)
    try:
        wait_status(queue, bad_job.id, JobStatus.FAILED)
        wait_status(queue, good.id, JobStatus.COMPLETED)
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)
    error = queue.get(bad_job.id).error
    assert error is not None
    return error


def _self_referencing() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ is broken")


class UnformattableNotes(list[str]):
    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("these notes cannot be read")


def test_an_exception_whose_traceback_cannot_be_formatted_is_still_described() -> None:
    try:
        raise Unprintable()
    except Unprintable as exc:
        exc.__notes__ = UnformattableNotes(["a note"])
        error = error_of(exc)
    assert error.type == "Unprintable"
    assert "cannot be shown" in error.message
    assert "test_an_exception_whose_traceback_cannot_be_formatted" in error.traceback
    assert error.traceback.endswith("Unprintable: " + error.message + "\n")


@pytest.mark.parametrize(
    ("make_result", "words"),
    [
        (_self_referencing, "(or contains itself)"),
        (lambda: _nested(2_000), "nested more than 128 lists or dicts deep"),
        (lambda: {"deep": _nested(100_000)}, "nested more than 128 lists or dicts deep"),
        (lambda: ["lone surrogate \ud800"], "lone surrogate (U+D800"),
    ],
    ids=["self-referencing", "2000-deep", "100000-deep", "lone-surrogate"],
)
def test_a_result_that_cannot_be_stored_fails_the_attempt_and_spares_the_thread(
    make_queue: MakeQueue, make_result: Any, words: str
) -> None:
    queue = make_queue(poll_interval=0.005)

    @queue.task("weird_result", max_attempts=1)
    def weird_result() -> Any:
        return make_result()

    error = error_of_bad_job_then_a_fine_one(queue, weird_result)
    assert error.type == "PayloadError"
    assert "result of weird_result" in error.message
    assert words in error.message


def test_an_exception_that_cannot_be_printed_still_fails_the_attempt_readably(
    make_queue: MakeQueue,
) -> None:
    queue = make_queue(poll_interval=0.005)

    @queue.task("unprintable", max_attempts=1)
    def unprintable() -> None:
        raise Unprintable()

    error = error_of_bad_job_then_a_fine_one(queue, unprintable)
    assert error.type == "Unprintable"
    assert "Unprintable" in error.message
    assert "cannot be shown" in error.message
    assert "unprintable" in error.traceback  # the task's frame is still named


def test_an_error_message_no_database_can_hold_is_stored_escaped(make_queue: MakeQueue) -> None:
    queue = make_queue(poll_interval=0.005)

    @queue.task("garbled", max_attempts=1)
    def garbled() -> None:
        raise ValueError("NUL \x00 and a lone surrogate \udc80")

    error = error_of_bad_job_then_a_fine_one(queue, garbled)
    assert error.message == "NUL \\x00 and a lone surrogate \\udc80"


def test_a_backoff_that_raises_fails_the_job_with_the_reason(make_queue: MakeQueue) -> None:
    queue = make_queue(poll_interval=0.005)

    def broken_backoff(attempt: int) -> float:
        raise ZeroDivisionError("the backoff divides by zero")

    @queue.task("flaky", backoff=broken_backoff)
    def flaky() -> None:
        raise ValueError("first failure")

    job = flaky.enqueue()
    pool = queue.start_workers(concurrency=1)
    try:
        wait_status(queue, job.id, JobStatus.FAILED)
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)
    failed = queue.get(job.id)
    assert failed.error is not None
    assert failed.error.type == "ValueError"
    assert failed.error.message.startswith("first failure; no retry")
    assert "ZeroDivisionError: the backoff divides by zero" in failed.error.message


@pytest.fixture
def a_receiver_ending_its_thread() -> Iterator[threading.Event]:
    """A job_started receiver raising SystemExit (which signal receivers may not
    catch) once: the worker thread that sent the signal is gone."""
    fired = threading.Event()

    def end_the_thread(sender: object, **kwargs: Any) -> None:
        if not fired.is_set():
            fired.set()
            raise SystemExit("a receiver ended its thread")

    signals.job_started.connect(end_the_thread)
    try:
        yield fired
    finally:
        signals.job_started.disconnect(end_the_thread)


def test_a_worker_thread_that_dies_is_replaced_and_its_jobs_run(
    make_queue: MakeQueue, a_receiver_ending_its_thread: threading.Event
) -> None:
    queue = make_queue(poll_interval=0.005)

    @queue.task("echo", max_attempts=2, backoff=0)
    def echo(n: int) -> int:
        return n

    first, second, third = echo.enqueue_many([(1,), (2,), (3,)])
    pool = queue.start_workers(concurrency=1, prefetch=2)
    try:
        for job_id in (first, second, third):
            wait_status(queue, job_id, JobStatus.COMPLETED)
        assert a_receiver_ending_its_thread.is_set()
        eventually(lambda: len(worker_threads(pool.name)) == 1)  # its replacement
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)  # nothing left behind as running
    attempts = sorted(queue.get(job_id).attempts for job_id in (first, second, third))
    assert attempts == [1, 1, 2]  # the attempt the dead thread held was counted, then rerun


# -- item: a timed-out attempt keeps its slot until its thread returns ------------------


def test_a_timed_out_attempt_keeps_its_concurrency_limit_until_it_returns(
    make_queue: MakeQueue,
) -> None:
    clock = FakeClock(START)
    queue = make_queue(poll_interval=0.005, clock=clock, lease_seconds=600)
    lock = threading.Lock()
    release = threading.Event()
    first_started = threading.Event()
    events: list[str] = []
    running = peak = 0

    @queue.task("single", timeout=30, concurrency_limit=1, max_attempts=3, backoff=0, priority=1)
    def single(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            events.append(f"start {n}")
        if not first_started.is_set():
            first_started.set()
            release.wait(BOUNDED_WAIT)
        with lock:
            running -= 1
            events.append(f"end {n}")
        return n

    @queue.task("marker")
    def marker() -> None:
        pass

    stuck, other = single.enqueue_many([(1,), (2,)])
    pool = queue.start_workers(concurrency=4)
    try:
        assert first_started.wait(BOUNDED_WAIT)
        clock.advance(31)
        eventually(lambda: any(entry["stuck"] for entry in pool.running()))
        # A job of lower priority is claimed only after every claimable "single" job.
        seen = marker.enqueue()
        wait_status(queue, seen.id, JobStatus.COMPLETED)
        held = queue.get(stuck)
        assert (held.status, held.attempts) == (JobStatus.PROCESSING, 1)
        assert queue.get(other).status is JobStatus.PENDING
        [entry] = pool.running()
        assert entry["id"] == stuck
        assert entry["timed_out"]
        assert entry["stuck"]
        assert entry["stuck_since"] == START + 30

        release.set()
        wait_status(queue, stuck, JobStatus.COMPLETED)
        wait_status(queue, other, JobStatus.COMPLETED)
    finally:
        release.set()
        assert pool.stop(timeout=BOUNDED_WAIT)
    assert peak == 1
    assert events[:2] == ["start 1", "end 1"]  # nothing started beside the stuck attempt
    retried = queue.get(stuck)
    assert retried.attempts == 2  # the timed-out attempt counted, then the job ran again


def test_jobs_prefetched_behind_a_stuck_thread_go_back_to_the_queue(make_queue: MakeQueue) -> None:
    clock = FakeClock(START)
    queue = make_queue(poll_interval=0.005, clock=clock, lease_seconds=600)
    release = threading.Event()
    started = threading.Event()

    @queue.task("hang", timeout=30, max_attempts=1, priority=1)
    def hang() -> None:
        started.set()
        release.wait(BOUNDED_WAIT)

    @queue.task("quick")
    def quick(n: int) -> int:
        return n

    hung = hang.enqueue()
    waiting = quick.enqueue_many([(1,), (2,)])
    stuck_pool = queue.start_workers(concurrency=1, prefetch=2, name="stuck")
    other_pool = None
    try:
        assert started.wait(BOUNDED_WAIT)
        eventually(
            lambda: all(queue.get(job_id).status is JobStatus.PROCESSING for job_id in waiting)
        )
        clock.advance(31)
        eventually(lambda: all(queue.get(job_id).status is JobStatus.PENDING for job_id in waiting))
        assert all(queue.get(job_id).attempts == 0 for job_id in waiting)  # handed back unrun
        other_pool = queue.start_workers(concurrency=1, name="other")
        for job_id in waiting:
            wait_status(queue, job_id, JobStatus.COMPLETED)
        assert queue.get(hung.id).status is JobStatus.PROCESSING  # still held by its thread
    finally:
        release.set()
        stopped = stuck_pool.stop(timeout=BOUNDED_WAIT)
        if other_pool is not None:
            assert other_pool.stop(timeout=BOUNDED_WAIT)
    assert stopped
    failed = queue.get(hung.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.type == "TaskTimeout"


def test_a_stuck_attempt_is_recorded_as_timed_out_when_the_pool_gives_up(
    make_queue: MakeQueue,
) -> None:
    clock = FakeClock(START)
    queue = make_queue(poll_interval=0.005, clock=clock, lease_seconds=600)
    release = threading.Event()
    started = threading.Event()

    @queue.task("hang", timeout=30, max_attempts=2)
    def hang() -> str:
        started.set()
        release.wait(BOUNDED_WAIT)
        return "too late"

    job = hang.enqueue()
    pool = queue.start_workers(concurrency=1)
    try:
        assert started.wait(BOUNDED_WAIT)
        clock.advance(31)
        eventually(lambda: pool.running()[0]["stuck"])
        assert pool.stop(timeout=0.05) is False
        after = queue.get(job.id)
        assert (after.status, after.attempts, after.lease_expires_at) == (
            JobStatus.PENDING,
            1,
            None,
        )
        assert after.error is not None
        assert after.error.type == "TaskTimeout"
    finally:
        release.set()
    eventually(lambda: not worker_threads(pool.name))
    assert queue.get(job.id).result is None  # the late return changed nothing
