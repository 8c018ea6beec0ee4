"""Chains and dependencies with real workers: results passed from step to step,
failures cascading, a diamond of dependencies, wake-ups of idle workers (in this
process, across processes through the SQLite channel, and PostgreSQL NOTIFY),
and a worker killed with SIGKILL in the middle of a chain. The queue-level tests and
the SIGKILL run on Redis too."""

from __future__ import annotations

import os
import queue as queue_module
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jobq
from jobq import JobStatus
from jobq.storage import SQLiteStorage
from jobq.storage.base import NewJob
from tests.helpers import (
    BOUNDED_WAIT,
    QUEUE_BACKENDS,
    MakeQueue,
    drop_redis_prefix,
    eventually,
    redis_location,
    redis_test_prefix,
    wait_for,
)
from tests.integration._chain_child import chain_queue

CHILD = Path(__file__).with_name("_chain_child.py")
LONG_POLL = 30.0
"""An idle pool's poll interval: far longer than any wait here, so only a wake-up
(or the claim right after a completion) can make these tests pass in time."""

on_redis_too = pytest.mark.parametrize(
    "make_queue", [*QUEUE_BACKENDS, pytest.param("redis", marks=pytest.mark.redis)], indirect=True
)
"""Runs a test taking ``make_queue`` on SQLite, PostgreSQL and Redis."""


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def chain_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a queue lives, as one string a child process opens too: a SQLite file, or
    the test Redis server's URL with a key prefix of the test's own in its query."""
    if request.param == "sqlite":
        yield str(tmp_path / "jobs.db")
        return
    prefix = redis_test_prefix()
    try:
        yield redis_location(prefix)
    finally:
        drop_redis_prefix(prefix)


def _tasks(queue: jobq.DurableQueue, ran: list[tuple[str, Any]]) -> dict[str, jobq.Task[..., Any]]:
    lock = threading.Lock()

    def note(name: str, value: Any) -> None:
        with lock:
            ran.append((name, value))

    @queue.task("add")
    def add(a: int, b: int) -> int:
        note("add", (a, b))
        return a + b

    @queue.task("double")
    def double(x: int) -> int:
        note("double", x)
        return 2 * x

    @queue.task("label")
    def label(value: Any, *, prefix: str = "") -> str:
        note("label", value)
        return f"{prefix}{value}"

    @queue.task("boom", max_attempts=1)
    def boom(value: Any = None) -> None:
        note("boom", value)
        raise ValueError("no luck")

    return {"add": add, "double": double, "label": label, "boom": boom}


@on_redis_too
def test_a_chain_passes_each_result_to_the_next_step(make_queue: MakeQueue) -> None:
    queue = make_queue()
    ran: list[tuple[str, Any]] = []
    t = _tasks(queue, ran)
    chain = queue.chain(
        t["add"].s(1, 2),
        t["double"].s(),
        t["label"].s(prefix="n="),
        t["add"].si(10, 20).options(priority=5),
        t["double"].s(),
    )
    assert len(chain.job_ids) == 5
    assert chain.first_id == chain.job_ids[0]
    waiting = [queue.get(job_id) for job_id in chain.job_ids[1:]]
    assert all(job.waiting and job.waiting_for == 1 for job in waiting)
    assert queue.run_until_empty() == 5
    assert ran == [
        ("add", (1, 2)),
        ("double", 3),
        ("label", 6),
        ("add", (10, 20)),  # .si(): its own arguments only
        ("double", 30),
    ]
    assert queue.get(chain.last_id).decoded_result() == 60
    assert queue.get(chain.job_ids[2]).decoded_result() == "n=6"


@on_redis_too
def test_a_pool_runs_a_chain_step_after_step_without_waiting_for_its_poll(
    make_queue: MakeQueue,
) -> None:
    queue = make_queue(poll_interval=LONG_POLL)
    ran: list[tuple[str, Any]] = []
    t = _tasks(queue, ran)
    pool = queue.start_workers(concurrency=2)
    try:
        chain = queue.chain(t["add"].s(0, 1), *[t["double"].s() for _ in range(10)])
        eventually(lambda: queue.get(chain.last_id).status is JobStatus.COMPLETED)
    finally:
        pool.stop()
    assert queue.get(chain.last_id).decoded_result() == 1024
    assert [value for name, value in ran if name == "double"] == [2**n for n in range(10)]


@on_redis_too
def test_a_failed_step_cancels_the_rest_unless_a_step_says_run(make_queue: MakeQueue) -> None:
    queue = make_queue()
    ran: list[tuple[str, Any]] = []
    t = _tasks(queue, ran)
    chain = queue.chain(
        t["add"].s(1, 1),
        t["boom"].s(),
        t["double"].s(),
        t["label"].s(prefix="after: ").options(on_dependency_failure="run"),
    )
    queue.run_until_empty()
    statuses = [queue.get(job_id).status for job_id in chain.job_ids]
    assert statuses == [
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
        JobStatus.COMPLETED,
    ]
    cancelled = queue.get(chain.job_ids[2])
    assert cancelled.error is not None
    assert (cancelled.error.type, cancelled.error.message) == (
        "DependencyFailed",
        f"job {chain.job_ids[1]} failed",
    )
    # The step that runs anyway gets None: the step before it never completed.
    assert queue.get(chain.last_id).decoded_result() == "after: None"
    assert [name for name, _ in ran] == ["add", "boom", "label"]


@on_redis_too
def test_diamond_dependencies_run_the_join_once_after_both_branches(make_queue: MakeQueue) -> None:
    queue = make_queue(poll_interval=LONG_POLL)
    ran: list[tuple[str, Any]] = []
    t = _tasks(queue, ran)
    a = t["add"].options(delay=0).enqueue(1, 1)
    b = t["double"].options(depends_on=[a]).enqueue(10)
    c = t["double"].options(depends_on=[a.id]).enqueue(20)
    d = t["add"].options(depends_on=[b, c]).enqueue(100, 200)
    assert queue.get(d.id).waiting_for == 2
    pool = queue.start_workers(concurrency=4)
    try:
        eventually(lambda: queue.get(d.id).status is JobStatus.COMPLETED)
    finally:
        pool.stop()
    assert ran[0] == ("add", (1, 1))
    assert sorted(ran[1:3]) == [("double", 10), ("double", 20)]
    assert ran[3:] == [("add", (100, 200))]
    assert queue.storage.dependencies_of(d.id) == [b.id, c.id]


@on_redis_too
def test_bad_chains_and_dependencies_store_nothing(make_queue: MakeQueue) -> None:
    queue = make_queue(max_payload_bytes=1000)
    t = _tasks(queue, [])
    with pytest.raises(ValueError, match="at least one step"):
        queue.chain()
    with pytest.raises(TypeError, match="step 2"):
        queue.chain(t["add"].s(1, 2), t["double"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="missing a required argument"):
        queue.chain(t["add"].s(1, 2), t["add"].s())  # add(result) lacks b
    with pytest.raises(jobq.PayloadError):
        queue.chain(t["add"].s(1, 2), t["label"].s(prefix="x" * 2000))
    with pytest.raises(ValueError, match="unique_key"):
        t["double"].s().options(unique_key="k")
    with pytest.raises(ValueError, match="unique_key"):
        t["double"].options(depends_on=[1], unique_key="k")
    with pytest.raises(ValueError, match="on_dependency_failure"):
        t["double"].options(on_dependency_failure="ignore")
    with pytest.raises(TypeError, match="depends_on"):
        t["double"].options(depends_on=["12"])  # type: ignore[list-item]
    with pytest.raises(jobq.UnknownDependency):
        t["double"].options(depends_on=[12345]).enqueue(1)
    assert queue.list() == []


@on_redis_too
def test_enqueue_by_name_takes_depends_on(make_queue: MakeQueue) -> None:
    queue = make_queue()
    t = _tasks(queue, [])
    first = t["add"].enqueue(2, 3)
    later = queue.enqueue_by_name("double", [7], depends_on=[first])
    assert later.waiting
    queue.run_until_empty()
    assert queue.get(later.id).decoded_result() == 14


def test_a_completion_in_another_process_wakes_sqlite_subscribers(tmp_path: Path) -> None:
    if not hasattr(__import__("socket"), "AF_UNIX"):
        pytest.skip("no Unix datagram sockets: pools poll")
    database = str(tmp_path / "jobs.db")
    storage = SQLiteStorage(database)
    first = storage.enqueue(NewJob("t", "[]", queue="first"), now=1.0).job.id
    storage.enqueue(NewJob("t", "[]", queue="second", depends_on=(first,)), now=1.0)
    heard: queue_module.Queue[str | None] = queue_module.Queue()
    unsubscribe = storage.subscribe(heard.put)  # type: ignore[attr-defined]
    try:
        # Nothing in this process polls: only the channel can deliver this.
        done = subprocess.run(
            [sys.executable, str(CHILD), "complete-first", database, str(tmp_path)],
            timeout=60,
            check=False,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert heard.get(timeout=BOUNDED_WAIT) == "second"
    finally:
        unsubscribe()
        storage.close()


@pytest.mark.postgres
def test_a_completion_that_releases_a_job_notifies_postgres_listeners() -> None:
    from jobq.storage.postgres import PostgresStorage
    from tests.helpers import drop_postgres_schema, postgres_schema_url

    url = postgres_schema_url()
    storage = PostgresStorage(url, clock="caller")
    try:
        first = storage.enqueue(NewJob("t", "[]", queue="first"), now=1.0).job.id
        storage.enqueue(NewJob("t", "[]", queue="second", depends_on=(first,)), now=1.0)
        heard: queue_module.Queue[str | None] = queue_module.Queue()
        unsubscribe = storage.subscribe(heard.put)
        try:
            while heard.get(timeout=BOUNDED_WAIT) is not None:  # the "listening now" call
                pass
            (job,) = storage.claim(["first"], owner="w", now=2.0, lease_seconds=60)
            assert job.lease_token is not None
            storage.complete(job.id, job.lease_token, now=3.0)
            assert heard.get(timeout=BOUNDED_WAIT) == "second"
        finally:
            unsubscribe()
    finally:
        storage.close()
        drop_postgres_schema(url)


@pytest.mark.slow  # starts a process: the full suite runs it, not --fast
def test_a_worker_killed_mid_chain_loses_no_step(chain_database: str, tmp_path: Path) -> None:
    database = chain_database
    queue = chain_queue(database, tmp_path)
    try:
        inc, hang_once = queue.get_task("inc"), queue.get_task("hang_once")
        chain = queue.chain(inc.s(0), hang_once.s(), inc.s(), inc.s())
        worker = subprocess.Popen(
            [sys.executable, str(CHILD), "worker", database, str(tmp_path)], start_new_session=True
        )
        try:
            wait_for(lambda: (tmp_path / "hung").exists(), "the worker to reach step 2", 60)
            os.kill(worker.pid, signal.SIGKILL)
            assert worker.wait(timeout=60) == -signal.SIGKILL
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        hung = queue.get(chain.job_ids[1])
        assert hung.status is JobStatus.PROCESSING
        assert queue.get(chain.job_ids[2]).waiting
        # Its lease lapses (time passed as an argument): rescue puts it back.
        rescued = queue.storage.rescue_expired(now=hung.lease_expires_at + 1)  # type: ignore[operator]
        assert rescued.requeued == (hung.id,)
        assert queue.run_until_empty() == 3
        assert queue.get(chain.last_id).decoded_result() == 4
        again = queue.get(hung.id)
        assert again.attempts == 2
        assert again.error is not None
        assert again.error.type == "LeaseExpired"
    finally:
        queue.close()
