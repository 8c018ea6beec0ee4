"""The worker pool with real threads on a real SQLite file."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import jobq
from jobq import DurableQueue, JobStatus, signals
from jobq.testing import FakeClock
from tests.helpers import BOUNDED_WAIT, MakeQueue, eventually


@pytest.fixture
def queue(make_queue: MakeQueue) -> DurableQueue:
    return make_queue(poll_interval=0.005)


def wait_status(queue: DurableQueue, job_id: int, status: JobStatus) -> jobq.Job:
    eventually(lambda: queue.get(job_id).status is status)
    return queue.get(job_id)


def test_pool_runs_jobs_concurrently_and_each_once(queue: DurableQueue) -> None:
    lock = threading.Lock()
    calls: dict[int, int] = {}
    running = 0
    peak = 0

    @queue.task("count")
    def count(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            calls[n] = calls.get(n, 0) + 1
        threading.Event().wait(0.001)
        with lock:
            running -= 1
        return n

    ids = count.enqueue_many([(n,) for n in range(300)])
    pool = queue.start_workers(concurrency=4)
    try:
        eventually(lambda: queue.stats().queues["default"].counts[JobStatus.COMPLETED] == 300)
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)
    assert calls == dict.fromkeys(range(300), 1)
    assert 1 < peak <= 4
    assert queue.get(ids[-1]).decoded_result() == 299


def test_a_job_enqueued_in_process_wakes_an_idle_pool(make_queue: MakeQueue) -> None:
    # A poll interval of a minute: only the in-process wake-up can start the job quickly.
    queue = make_queue("wake", poll_interval=60)
    done = threading.Event()

    @queue.task("ping")
    def ping() -> None:
        done.set()

    pool = queue.start_workers(concurrency=1)
    try:
        eventually(lambda: pool.is_alive)
        threading.Event().wait(0.05)  # let the pool go idle
        ping.enqueue()
        assert done.wait(5), "the enqueue did not wake the pool"
    finally:
        pool.stop(timeout=BOUNDED_WAIT)
        queue.close()


def test_failures_retry_and_never_kill_a_worker(queue: DurableQueue) -> None:
    @queue.task("boom", max_attempts=2, backoff=0)
    def boom() -> None:
        raise SystemExit("a task calling sys.exit() must not end the worker")

    @queue.task("ok")
    def ok() -> str:
        return "fine"

    failing = boom.enqueue()
    pool = queue.start_workers(concurrency=1)
    try:
        failed = wait_status(queue, failing.id, JobStatus.FAILED)
        assert failed.attempts == 2
        assert failed.error is not None
        assert failed.error.type == "SystemExit"
        later = ok.enqueue()
        assert wait_status(queue, later.id, JobStatus.COMPLETED).decoded_result() == "fine"
    finally:
        pool.stop(timeout=BOUNDED_WAIT)


def test_cancel_reaches_a_running_job_through_the_heartbeat(make_queue: MakeQueue) -> None:
    queue = make_queue("cancel", lease_seconds=0.3, poll_interval=0.005)
    started = threading.Event()

    @queue.task("loop")
    def loop() -> str:
        started.set()
        context = jobq.current_job()
        assert context.wait_for_cancel(BOUNDED_WAIT), "cancel never arrived"
        return "stopped"

    job = loop.enqueue()
    pool = queue.start_workers(concurrency=1)
    try:
        assert started.wait(BOUNDED_WAIT)
        assert queue.cancel(job.id).cancel_requested
        wait_status(queue, job.id, JobStatus.CANCELLED)
    finally:
        pool.stop(timeout=BOUNDED_WAIT)
        queue.close()


def test_timeout_fails_the_attempt_and_frees_nothing_else(make_queue: MakeQueue) -> None:
    clock = FakeClock(1_800_000_000.0)
    queue = make_queue("timeout", poll_interval=0.005, clock=clock)
    release = threading.Event()

    @queue.task("stuck", timeout=30, max_attempts=1)
    def stuck() -> None:
        release.wait(BOUNDED_WAIT)

    job = stuck.enqueue()
    pool = queue.start_workers(concurrency=1)
    try:
        eventually(lambda: len(pool.running()) == 1)
        clock.advance(31)
        eventually(lambda: pool.running()[0]["timed_out"])  # the thread still runs it
        # Its lease and its slot are kept until the thread returns: it cannot run twice.
        assert queue.get(job.id).status is JobStatus.PROCESSING
        release.set()
        failed = wait_status(queue, job.id, JobStatus.FAILED)
        assert failed.error is not None
        assert failed.error.type == "TaskTimeout"
    finally:
        release.set()
        pool.stop(timeout=BOUNDED_WAIT)
        queue.close()
    assert queue_status_after_late_return(make_queue, job.id) is JobStatus.FAILED


def queue_status_after_late_return(make_queue: MakeQueue, job_id: int) -> JobStatus:
    reopened = make_queue("timeout")
    try:
        return reopened.get(job_id).status
    finally:
        reopened.close()


def test_stop_hands_back_jobs_that_did_not_start(queue: DurableQueue) -> None:
    gate = threading.Event()

    @queue.task("slow")
    def slow() -> None:
        gate.wait(BOUNDED_WAIT)

    ids = slow.enqueue_many([() for _ in range(6)])
    pool = queue.start_workers(concurrency=2, prefetch=4)
    eventually(lambda: len(pool.running()) == 2)
    stopper = threading.Thread(target=pool.stop, kwargs={"timeout": BOUNDED_WAIT})
    stopper.start()
    gate.set()
    stopper.join(BOUNDED_WAIT * 2)
    statuses = [queue.get(i).status for i in ids]
    assert statuses.count(JobStatus.COMPLETED) == 2
    assert statuses.count(JobStatus.PENDING) == 4
    assert all(queue.get(i).attempts == 0 for i in ids if queue.get(i).status is JobStatus.PENDING)


def test_signals_follow_a_job(queue: DurableQueue) -> None:
    seen: list[tuple[str, Any]] = []

    def record(kind: str) -> Any:
        def receiver(sender: Any, **kw: Any) -> None:
            seen.append((kind, kw["job"].name if "job" in kw else None))

        return receiver

    @queue.task("twice", max_attempts=2, backoff=0)
    def twice() -> None:
        if jobq.current_job().attempt == 1:
            raise ValueError("first time")

    receivers = {
        signals.job_enqueued: record("enqueued"),
        signals.job_started: record("started"),
        signals.job_retrying: record("retrying"),
        signals.job_succeeded: record("succeeded"),
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver, sender=queue)
    try:
        job = twice.enqueue()
        pool = queue.start_workers(concurrency=1)
        wait_status(queue, job.id, JobStatus.COMPLETED)
        pool.stop(timeout=BOUNDED_WAIT)
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver, sender=queue)
    assert [kind for kind, _ in seen] == ["enqueued", "started", "retrying", "started", "succeeded"]


def test_heartbeats_keep_a_long_job_leased_as_time_passes(make_queue: MakeQueue) -> None:
    clock = FakeClock(1_800_000_000.0)
    queue = make_queue("long", lease_seconds=30, poll_interval=0.005, clock=clock)
    release = threading.Event()

    @queue.task("long")
    def long_job() -> str:
        release.wait(BOUNDED_WAIT)
        return "done"

    job = long_job.enqueue()
    pool = queue.start_workers(concurrency=1)
    try:
        eventually(lambda: len(pool.running()) == 1)
        for _ in range(10):  # five minutes, ten lease lengths, in steps of half a lease
            before = queue.get(job.id).lease_expires_at
            clock.advance(15)
            eventually(lambda before=before: queue.get(job.id).lease_expires_at != before)
        assert queue.get(job.id).attempts == 1  # never rescued from under its worker
        release.set()
        done = wait_status(queue, job.id, JobStatus.COMPLETED)
        assert done.attempts == 1
    finally:
        release.set()
        pool.stop(timeout=BOUNDED_WAIT)
        queue.close()


def test_the_pool_enforces_retention(make_queue: MakeQueue) -> None:
    clock = FakeClock(1_800_000_000.0)
    retention = jobq.Retention(completed=3600, failed=None, cancelled=3600, interval=60)
    queue = make_queue("retention", poll_interval=0.005, clock=clock, retention=retention)

    @queue.task("quick", max_attempts=1)
    def quick(ok: bool) -> None:
        if not ok:
            raise ValueError("kept forever: failed=None")

    done, failed = quick.enqueue(True), quick.enqueue(False)
    pool = queue.start_workers(concurrency=1)
    try:
        wait_status(queue, done.id, JobStatus.COMPLETED)
        wait_status(queue, failed.id, JobStatus.FAILED)
        clock.advance(3000)  # not old enough yet, though purges run
        threading.Event().wait(0.05)
        assert queue.get(done.id).status is JobStatus.COMPLETED
        clock.advance(700)
        eventually(lambda: [j.id for j in queue.list()] == [failed.id])
    finally:
        pool.stop(timeout=BOUNDED_WAIT)
        queue.close()


def test_concurrency_changes_while_the_pool_runs(queue: DurableQueue) -> None:
    release = threading.Event()
    lock = threading.Lock()
    running = 0

    @queue.task("hold")
    def hold() -> None:
        nonlocal running
        with lock:
            running += 1
        release.wait(BOUNDED_WAIT)
        with lock:
            running -= 1

    hold.enqueue_many([()] * 6)
    pool = queue.start_workers(concurrency=1)
    try:
        eventually(lambda: running == 1)
        pool.set_concurrency(3)
        eventually(lambda: running == 3)
        pool.set_concurrency(1)
        release.set()
        eventually(lambda: queue.stats().queues["default"].counts[JobStatus.COMPLETED] == 6)
        eventually(
            lambda: (
                sum(
                    t.is_alive()
                    for t in threading.enumerate()
                    if t.name.startswith(f"jobq-{pool.name}-worker")
                )
                == 1
            )
        )
        with pytest.raises(ValueError, match="concurrency"):
            pool.set_concurrency(0)
    finally:
        release.set()
        assert pool.stop(timeout=BOUNDED_WAIT)


def test_jobs_still_running_after_the_grace_period_are_handed_back(queue: DurableQueue) -> None:
    release = threading.Event()
    started = threading.Event()

    @queue.task("stubborn", max_attempts=3)
    def stubborn() -> str:
        started.set()
        release.wait(BOUNDED_WAIT)
        return "too late"

    job = stubborn.enqueue()
    pool = queue.start_workers(concurrency=1)
    try:
        assert started.wait(BOUNDED_WAIT)
        assert pool.stop(timeout=0.2) is False  # still running when the grace ran out
        after = queue.get(job.id)
        # No lease outlives the pool: the attempt is recorded and the job waits again.
        assert (after.status, after.attempts, after.lease_expires_at) == (
            JobStatus.PENDING,
            1,
            None,
        )
        assert after.error is not None
        assert after.error.type == "WorkerStopped"
    finally:
        release.set()
    eventually(
        lambda: (
            not any(t.name.startswith(f"jobq-{pool.name}-worker") for t in threading.enumerate())
        )
    )
    assert queue.get(job.id).result is None  # the late return changed nothing (fencing)
