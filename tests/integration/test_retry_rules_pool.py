"""Retry rules in a worker pool with real threads on a real database."""

from __future__ import annotations

import threading

import jobq
from jobq import DurableQueue, JobStatus, RetryRule
from jobq.testing import FakeClock
from tests.helpers import BOUNDED_WAIT, MakeQueue, eventually

START = 1_800_000_000.0


def wait_status(queue: DurableQueue, job_id: int, status: JobStatus) -> jobq.Job:
    eventually(lambda: queue.get(job_id).status is status)
    return queue.get(job_id)


def retrying(job: jobq.Job) -> bool:
    return job.status is JobStatus.PENDING and job.attempts == 1


def test_a_pool_discards_retries_and_defaults_by_exception(make_queue: MakeQueue) -> None:
    clock = FakeClock(START)
    queue = make_queue("rules", poll_interval=0.005, clock=clock)

    @queue.task(
        "by_kind",
        max_attempts=4,
        backoff=1000,
        retry_on={ConnectionError: RetryRule(attempts=2, backoff=10)},
        discard_on=(LookupError,),
    )
    def by_kind(kind: str) -> None:
        raise {"lookup": KeyError, "network": BrokenPipeError, "other": RuntimeError}[kind](kind)

    pool = queue.start_workers(concurrency=2)
    try:
        lookup, network, other = (by_kind.enqueue(k) for k in ("lookup", "network", "other"))
        discarded = wait_status(queue, lookup.id, JobStatus.FAILED)
        assert discarded.attempts == 1
        assert discarded.error is not None
        assert discarded.error.message.endswith(
            "not retried: KeyError matches LookupError in discard_on"
        )
        # Each claimed, failed once, and waiting for its retry.
        eventually(lambda: retrying(queue.get(network.id)))
        eventually(lambda: retrying(queue.get(other.id)))
        assert queue.get(network.id).run_at == START + 10
        assert queue.get(other.id).run_at == START + 1000
        clock.advance(10)
        exhausted = wait_status(queue, network.id, JobStatus.FAILED)
        assert exhausted.attempts == 2
        assert queue.get(other.id).status is JobStatus.PENDING  # still waiting its 1000 s
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)


def test_a_timed_out_attempt_is_discarded_by_discard_on(make_queue: MakeQueue) -> None:
    clock = FakeClock(START)
    queue = make_queue("timeout", poll_interval=0.005, clock=clock)
    release = threading.Event()

    @queue.task("stuck", timeout=30, max_attempts=3, discard_on=jobq.TaskTimeout)
    def stuck() -> None:
        release.wait(BOUNDED_WAIT)

    job = stuck.enqueue()
    pool = queue.start_workers(concurrency=1)
    try:
        eventually(lambda: len(pool.running()) == 1)
        clock.advance(31)
        eventually(lambda: pool.running()[0]["timed_out"])
        release.set()
        failed = wait_status(queue, job.id, JobStatus.FAILED)
        assert failed.attempts == 1  # not the task's 3
        assert failed.error is not None
        assert failed.error.type == "TaskTimeout"
        assert failed.error.message.endswith("not retried: TaskTimeout is in discard_on")
    finally:
        release.set()
        assert pool.stop(timeout=BOUNDED_WAIT)
