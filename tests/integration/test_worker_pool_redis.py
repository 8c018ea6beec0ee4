"""The worker pool with real threads on a real Redis server, opened as users open
it: ``DurableQueue("redis://...")``, with tasks unchanged."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import jobq
from jobq import DurableQueue, JobStatus
from jobq.storage.redis import RedisStorage
from tests.helpers import BOUNDED_WAIT, eventually
from tests.integration._redis_url import redis_url

pytestmark = pytest.mark.redis


@pytest.fixture
def url() -> Iterator[str]:
    with redis_url() as url:
        yield url


@pytest.fixture
def queue(url: str) -> Iterator[DurableQueue]:
    queue = DurableQueue(url, poll_interval=0.005)
    yield queue
    queue.close()


def wait_status(queue: DurableQueue, job_id: int, status: JobStatus) -> jobq.Job:
    eventually(lambda: queue.get(job_id).status is status)
    return queue.get(job_id)


def test_a_redis_url_opens_a_redis_storage(queue: DurableQueue) -> None:
    assert isinstance(queue.storage, RedisStorage)
    assert queue.storage.prefix.startswith("jobq-test-")


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


def test_a_job_enqueued_in_process_wakes_an_idle_pool(url: str) -> None:
    # A poll interval of a minute: only a wake-up can start the job quickly.
    queue = DurableQueue(url, poll_interval=60)
    done = threading.Event()

    @queue.task("ping")
    def ping() -> None:
        done.set()

    pool = queue.start_workers(concurrency=1)
    try:
        eventually(lambda: pool.is_alive)
        ping.enqueue()
        assert done.wait(BOUNDED_WAIT), "the enqueue did not wake the pool"
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


def test_cancel_reaches_a_running_job_through_the_heartbeat(url: str) -> None:
    queue = DurableQueue(url, lease_seconds=0.3, poll_interval=0.005)
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


def test_two_queues_on_one_database_with_different_prefixes_do_not_mix(url: str) -> None:
    other_url = url.replace("prefix=jobq-test-", "prefix=jobq-test-other-")
    first, second = DurableQueue(url), DurableQueue(other_url)
    try:

        @first.task("t")
        def t() -> None: ...

        job = t.enqueue()
        assert [j.id for j in first.list()] == [job.id]
        assert second.list() == []
    finally:
        first.close()
        second.close()
        from tests.helpers import drop_redis_prefix

        assert isinstance(second.storage, RedisStorage)
        drop_redis_prefix(second.storage.prefix)
