"""Batches with real worker pools, on each backend (Redis too): the callback runs
once with the counts, an error in the ``with`` block cancels, and the queue-level
API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jobq
from jobq import DurableQueue, JobStatus
from tests.helpers import (
    BOUNDED_WAIT,
    QUEUE_BACKENDS,
    MakeQueue,
    drop_postgres_schema,
    drop_redis_prefix,
    eventually,
    postgres_schema_url,
    redis_test_prefix,
    require_redis,
)


@pytest.fixture(params=[*QUEUE_BACKENDS, pytest.param("redis", marks=pytest.mark.redis)])
def make_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeQueue]:
    """The shared ``make_queue`` (tests/conftest.py), on Redis too: a key prefix of
    its own per ``name``."""
    opened: list[DurableQueue] = []
    places: dict[str, str] = {}

    def make(name: str = "jobs", **options: Any) -> DurableQueue:
        clock = "caller" if "clock" in options else "database"
        location: Any
        if request.param == "sqlite":
            location = tmp_path / f"{name}.db"
        elif request.param == "postgres":
            from jobq.storage.postgres import PostgresStorage

            if name not in places:
                places[name] = postgres_schema_url()
            location = PostgresStorage(places[name], clock=clock)
        else:
            from jobq.storage.redis import RedisStorage

            if name not in places:
                places[name] = redis_test_prefix()
            location = RedisStorage(
                require_redis(), prefix=places[name], clock=clock, durability="ignore"
            )
        queue = DurableQueue(location, **options)
        opened.append(queue)
        return queue

    yield make
    for queue in opened:
        queue.close()
    for place in places.values():
        if request.param == "postgres":
            drop_postgres_schema(place)
        else:
            drop_redis_prefix(place)


def test_a_pool_runs_a_batch_to_one_callback_with_the_counts(make_queue: MakeQueue) -> None:
    queue = make_queue(poll_interval=0.01)
    reports: list[jobq.BatchSummary] = []
    reported = threading.Event()

    @queue.task(max_attempts=1)
    def send(n: int) -> int:
        if n % 10 == 0:
            raise jobq.Fail(f"bounced {n}")
        return n

    @queue.task()
    def report(batch: jobq.BatchSummary) -> str:
        reports.append(batch)
        reported.set()
        return f"{batch['completed']:,} sent, {batch['failed']} failed"

    with queue.batch(on_complete=report, meta={"newsletter": 7}) as batch:
        ids = batch.enqueue_many(send, [(n,) for n in range(200)])
        job = batch.enqueue(send, 1000)
    assert queue.get(ids[0]).batch_id == batch.id == job.batch_id
    pool = queue.start_workers(concurrency=4)
    try:
        assert reported.wait(BOUNDED_WAIT)
        state = batch.status()
        eventually(lambda: queue.get(state.callback_job_ids[0]).status is JobStatus.COMPLETED)
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)
    assert reports == [
        {
            "id": batch.id,
            "event": "complete",
            "total": 201,
            "completed": 180,
            "failed": 21,
            "cancelled": 0,
            "meta": {"newsletter": 7},
        }
    ]
    assert (state.total, state.ended, state.pending, state.processing) == (201, 201, 0, 0)
    assert state.finished
    assert state.sealed
    assert len(state.callback_job_ids) == 1
    assert queue.get(state.callback_job_ids[0]).decoded_result() == "180 sent, 21 failed"


def test_success_or_failure_callbacks_and_the_queue_they_run_in(make_queue: MakeQueue) -> None:
    queue = make_queue()

    @queue.task()
    def ok() -> None: ...

    @queue.task(queue="reports")
    def on_done(batch: jobq.BatchSummary) -> str:
        return batch["event"]

    batch = queue.batch(on_complete=on_done, on_success=on_done, on_failure=on_done)
    batch.enqueue(ok)
    state = batch.seal()
    assert state.finished_at is None
    queue.run_until_empty()
    state = batch.status()
    callbacks = [queue.get(job_id) for job_id in state.callback_job_ids]
    assert [(job.queue, job.decoded_result()) for job in callbacks] == [
        ("reports", "complete"),
        ("reports", "success"),
    ]
    assert queue.get_batch(batch.id).status() == state
    assert [b.id for b in queue.list_batches()] == [batch.id]


def test_an_error_in_the_with_block_cancels_the_half_built_batch(make_queue: MakeQueue) -> None:
    queue = make_queue()

    @queue.task()
    def send(n: int) -> None: ...

    @queue.task()
    def report(batch: jobq.BatchSummary) -> dict[str, Any]:
        return dict(batch)

    batch = queue.batch(on_complete=report)

    def build() -> None:
        with batch:
            batch.enqueue_many(send, [(1,), (2,)])
            raise RuntimeError("address book unreachable")

    with pytest.raises(RuntimeError, match="address book"):
        build()
    state = batch.status()
    assert state.sealed
    assert state.cancel_requested
    assert state.cancelled == 2
    queue.run_until_empty()
    (callback,) = batch.status().callback_job_ids
    assert queue.get(callback).decoded_result()["cancelled"] == 2
    with pytest.raises(jobq.BatchSealed):
        batch.enqueue(send, 3)


def test_bad_batch_arguments_say_what_is_wrong(make_queue: MakeQueue) -> None:
    queue = make_queue()

    @queue.task()
    def send(n: int) -> None: ...

    with pytest.raises(jobq.UnknownTask):
        queue.batch(on_complete="nobody-registered-this")
    with pytest.raises(jobq.PayloadError):
        queue.batch(meta={"when": object()})
    with pytest.raises(jobq.BatchNotFound):
        queue.get_batch(10**9)
    batch = queue.batch()
    with pytest.raises(ValueError, match="unique_key"):
        batch.enqueue(send.options(unique_key="k"), 1)
    with pytest.raises(TypeError):
        batch.enqueue(send, "not", "fitting")
    assert batch.status().total == 0


def test_inline_mode_runs_the_batch_and_its_callback(tmp_path: Any) -> None:
    queue = DurableQueue(str(tmp_path / "inline.db"), inline=True)
    seen: list[int] = []

    @queue.task()
    def work(n: int) -> None: ...

    @queue.task()
    def report(batch: jobq.BatchSummary) -> None:
        seen.append(batch["completed"])

    try:
        with queue.batch(on_complete=report) as batch:
            batch.enqueue_many(work, [(1,), (2,), (3,)])
        assert seen == [3]
    finally:
        queue.close()
