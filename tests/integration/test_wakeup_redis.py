"""Wake-ups on Redis with a real server and real processes: the scripts that make
jobs runnable publish the queue's name, pools on any host hear it at once instead of
at their poll, and the listener survives losing its connection and a fork."""

from __future__ import annotations

import logging
import os
import queue as queue_module
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

import jobq
from jobq.storage import open_storage
from jobq.storage.base import JobError, JobStatus, NewJob, Notifier, Storage
from jobq.storage.batches import NewBatch
from tests.helpers import BOUNDED_WAIT, ROOT, require_redis, wait_for
from tests.integration._redis_url import redis_url

pytestmark = pytest.mark.redis

CHILD = Path(__file__).with_name("_wakeup_redis_child.py")
LONG_POLL = 60.0
"""Seconds between an idle pool's looks for jobs: longer than any wait of these tests."""

Heard = queue_module.Queue[str | None]


@pytest.fixture
def url() -> Iterator[str]:
    with redis_url() as url:
        yield url


def enqueue_elsewhere(url: str, queue_name: str = "mail") -> None:
    """Enqueue one ``record`` job on ``queue_name`` from another process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(CHILD), "enqueue", url, queue_name], env=env, timeout=60
    )
    assert done.returncode == 0


def listening(storage: Storage) -> tuple[Heard, Callable[[], None]]:
    """Subscribe to ``storage``'s wake-ups; return once the listener is connected
    (its first callback(None)), with what it hears next and the unsubscribe."""
    assert isinstance(storage, Notifier)
    heard: Heard = queue_module.Queue()
    unsubscribe = storage.subscribe(heard.put)
    assert heard.get(timeout=BOUNDED_WAIT) is None  # connected: look everywhere once
    return heard, unsubscribe


def wake_connections() -> list[str]:
    """The ids of this process's pub/sub connections to the test server."""
    import redis

    with redis.Redis.from_url(require_redis(), decode_responses=True) as client:
        clients = client.client_list()
    return [c["id"] for c in clients if c["name"] == f"jobq-wake-{os.getpid()}"]


def kill_connection(client_id: str) -> None:
    import redis

    with redis.Redis.from_url(require_redis()) as client:
        client.client_kill_filter(_id=client_id)


def test_a_subscriber_hears_a_job_enqueued_by_another_process(url: str) -> None:
    storage = open_storage(url)
    try:
        heard, unsubscribe = listening(storage)
        enqueue_elsewhere(url)
        assert heard.get(timeout=BOUNDED_WAIT) == "mail"
        unsubscribe()
    finally:
        storage.close()


def test_a_bulk_enqueue_publishes_once_per_queue(url: str) -> None:
    storage = open_storage(url)
    try:
        heard, unsubscribe = listening(storage)
        jobs = [NewJob(name="t", payload="[]", queue="bulk") for _ in range(9_999)]
        storage.enqueue_many([*jobs, NewJob(name="t", payload="[]", queue="other")], now=0.0)
        storage.enqueue(NewJob(name="t", payload="[]", queue="end"), now=0.0)
        # One subscriber hears messages in the order they were published.
        messages = [heard.get(timeout=BOUNDED_WAIT) for _ in range(3)]
        assert sorted(messages[:2]) == ["bulk", "other"]  # not 9,999 times "bulk"
        assert messages[2] == "end"
        unsubscribe()
    finally:
        storage.close()


def test_each_change_that_makes_a_job_runnable_wakes_and_a_delayed_job_does_not(url: str) -> None:
    from jobq.storage.redis import RedisStorage

    storage = RedisStorage(url, clock="caller")  # time driven through now=
    t = 1_800_000_000.0
    try:
        heard, unsubscribe = listening(storage)

        def claimed(queue: str, at: float) -> jobq.Job:
            [job] = storage.claim([queue], owner="w", now=at, lease_seconds=30)
            return job

        storage.enqueue(NewJob(name="t", payload="[]", queue="later", run_at=t + 3600), now=t)
        storage.enqueue(NewJob(name="t", payload="[]", queue="q1", max_attempts=5), now=t)
        assert heard.get(timeout=BOUNDED_WAIT) == "q1"  # and nothing for "later"

        job = claimed("q1", t)
        assert storage.release(job.id, job.lease_token or "", now=t) is not None
        assert heard.get(timeout=BOUNDED_WAIT) == "q1"  # released

        job = claimed("q1", t)
        error = JobError("Boom", "it broke", None)
        storage.fail(job.id, job.lease_token or "", error, now=t, retry_at=t)
        assert heard.get(timeout=BOUNDED_WAIT) == "q1"  # to be retried at once

        job = claimed("q1", t)
        assert storage.rescue_expired(now=t + 60).requeued == (job.id,)
        assert heard.get(timeout=BOUNDED_WAIT) == "q1"  # its lease expired: rescued

        job = claimed("q1", t + 60)
        storage.fail(job.id, job.lease_token or "", error, now=t + 60)
        storage.retry(job.id, now=t + 60)  # failed for good, then retried by hand
        assert heard.get(timeout=BOUNDED_WAIT) == "q1"

        storage.pause("q1", now=t)
        storage.resume("q1")
        assert heard.get(timeout=BOUNDED_WAIT) == "q1"

        storage.upsert_schedule("nightly", "every 60s", t, now=t)
        fired = storage.fire_schedule(
            "nightly", t, t + 60, [NewJob(name="t", payload="[]", queue="cron")], now=t
        )
        assert fired
        assert heard.get(timeout=BOUNDED_WAIT) == "cron"

        batch = storage.create_batch(NewBatch(on_complete="done", queue="callbacks"), now=t)
        storage.enqueue_in_batch(batch.id, [NewJob(name="t", payload="[]", queue="b")], now=t)
        assert heard.get(timeout=BOUNDED_WAIT) == "b"
        storage.seal_batch(batch.id, now=t)
        job = claimed("b", t)
        assert storage.complete(job.id, job.lease_token or "", now=t)
        assert heard.get(timeout=BOUNDED_WAIT) == "callbacks"  # the batch's callback job
        unsubscribe()
    finally:
        storage.close()


def recording_subscriptions(storage: Storage) -> Heard:
    """Record every wake-up the storage delivers to the pools subscribed from now on."""
    woken: Heard = queue_module.Queue()
    subscribe = storage.subscribe  # type: ignore[attr-defined]

    def recording(callback: Callable[[str | None], None]) -> Callable[[], None]:
        def woke(queue_name: str | None) -> None:
            woken.put(queue_name)
            callback(queue_name)

        return subscribe(woke)  # type: ignore[no-any-return]

    storage.subscribe = recording  # type: ignore[attr-defined]
    return woken


def test_an_idle_pool_runs_another_process_job_through_the_wake_up(url: str) -> None:
    queue = jobq.DurableQueue(url, poll_interval=LONG_POLL)
    ran = threading.Event()

    @queue.task("record", queue="mail")
    def record() -> None:
        ran.set()

    woken = recording_subscriptions(queue.storage)
    pool = queue.start_workers(concurrency=1)
    try:
        assert woken.get(timeout=BOUNDED_WAIT) is None  # the pool's listener is connected
        enqueue_elsewhere(url)
        assert ran.wait(BOUNDED_WAIT), "the job from another process did not run"
        # The pool heard of it. Whether the wake-up or the pool's one-second upkeep
        # tick (which also looks for work) claimed it first is not checked.
        assert woken.get(timeout=BOUNDED_WAIT) == "mail"
    finally:
        pool.stop(timeout=BOUNDED_WAIT)
        queue.close()


def test_the_listener_reconnects_after_its_connection_is_killed(url: str) -> None:
    queue = jobq.DurableQueue(url, poll_interval=LONG_POLL)
    ran = threading.Event()

    @queue.task("record", queue="mail")
    def record() -> None:
        ran.set()

    woken = recording_subscriptions(queue.storage)
    pool = queue.start_workers(concurrency=1)
    try:
        assert woken.get(timeout=BOUNDED_WAIT) is None
        [first] = wake_connections()  # one per process, shared by its subscribers
        kill_connection(first)
        # Messages published while it was gone are lost: the pool is told to look.
        assert woken.get(timeout=BOUNDED_WAIT) is None
        [second] = wake_connections()
        assert second != first
        enqueue_elsewhere(url)
        assert ran.wait(BOUNDED_WAIT), "the job from another process did not run"
        assert woken.get(timeout=BOUNDED_WAIT) == "mail"
    finally:
        pool.stop(timeout=BOUNDED_WAIT)
        queue.close()
    wait_for(lambda: wake_connections() == [], "the listener's connection closed", 10)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_listens_on_a_connection_of_its_own(url: str, tmp_path: Path) -> None:
    """As under gunicorn --preload: the queue is opened and subscribed before the
    fork, a pool starts in the child. The parent's subscription stays the parent's."""
    queue = jobq.DurableQueue(url)

    @queue.task("record", queue="mail")
    def record() -> None:
        (tmp_path / f"ran-{os.getpid()}").touch()

    heard, unsubscribe = listening(queue.storage)
    [parent_connection] = wake_connections()
    pid = os.fork()
    if pid == 0:  # the child: a pool of its own, which polls every minute
        code = 1
        try:
            queue.poll_interval = LONG_POLL
            woken = recording_subscriptions(queue.storage)
            pool = queue.start_workers(concurrency=1)
            if woken.get(timeout=30) is None and len(wake_connections()) == 1:
                (tmp_path / "ready").touch()
                if woken.get(timeout=30) == "mail":
                    (tmp_path / "child-heard").touch()
            deadline = time.monotonic() + 60
            while not (tmp_path / f"ran-{os.getpid()}").exists():
                if time.monotonic() > deadline:
                    raise SystemExit(3)
                time.sleep(0.01)
            pool.stop()
            code = 0
        finally:
            os._exit(code)
    try:
        wait_for(lambda: (tmp_path / "ready").exists(), "the child's pool listens", timeout=60)
        enqueue_elsewhere(url)  # from a third process
        assert heard.get(timeout=BOUNDED_WAIT) == "mail"  # the parent still hears
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert (tmp_path / "child-heard").exists()
        assert (tmp_path / f"ran-{pid}").exists()
        assert wake_connections() == [parent_connection]
    finally:
        unsubscribe()
        queue.close()


def test_a_user_the_acl_keeps_off_the_channel_still_enqueues_and_is_told(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import redis

    parts = urlsplit(url)
    if "@" in parts.netloc:
        pytest.skip("the test server's URL has credentials of its own")
    user = f"jobq-test-{uuid.uuid4().hex[:12]}"
    limited = urlunsplit(parts._replace(netloc=f"{user}:pw@{parts.netloc}"))
    with redis.Redis.from_url(require_redis()) as admin:
        # Every key and command, no channel (the default for new users since Redis 7).
        admin.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "+@all", "resetchannels")
        try:
            with open_storage(limited) as storage:
                job = storage.enqueue(NewJob(name="t", payload="[]", queue="mail"), now=0.0).job
                assert storage.get(job.id).status is JobStatus.PENDING  # stored, whole
                assert storage.stats(now=0.0).queues["mail"].counts[JobStatus.PENDING] == 1
                with caplog.at_level(logging.WARNING, logger="jobq.storage"):
                    unsubscribe = storage.subscribe(lambda queue_name: None)  # type: ignore[attr-defined]
                    try:
                        wait_for(
                            lambda: any(
                                "cannot listen for wake-ups" in r.getMessage()
                                for r in caplog.records
                            ),
                            "a warning that the pools poll",
                            BOUNDED_WAIT,
                        )
                    finally:
                        unsubscribe()
        finally:
            admin.execute_command("ACL", "DELUSER", user)
    [warning] = [r for r in caplog.records if "cannot listen" in r.getMessage()]
    assert "poll" in warning.getMessage()
