"""Unique-key policies through the queue: ``on_duplicate="replace"`` and ``debounce=``
on every enqueue path, and a worker pool running a debounced job once (on SQLite
and on PostgreSQL, through the ``make_queue`` fixture)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from jobq import DurableQueue, JobStatus, signals
from jobq.testing import FakeClock
from tests.helpers import MakeQueue, eventually

START = 1_800_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def queue(make_queue: MakeQueue, clock: FakeClock) -> DurableQueue:
    return make_queue(clock=clock)


def test_debounced_job_runs_once_with_the_last_arguments(
    queue: DurableQueue, clock: FakeClock
) -> None:
    ran: list[tuple[int, str]] = []
    done = threading.Event()

    @queue.task("reindex")
    def reindex(doc_id: int, title: str) -> None:
        ran.append((doc_id, title))
        done.set()

    pool = queue.start_workers(2)
    try:
        edits = ["draft", "draft 2", "final"]
        ids = set()
        for title in edits:  # an edit every 10 s, within the 30 s window
            job = reindex.options(unique_key="doc-7", debounce=30).enqueue(7, title)
            ids.add(job.id)
            assert job.run_at == clock.now() + 30
            clock.advance(10)
        assert len(ids) == 1
        # The pool polled all along; the job was never due until now.
        assert queue.get(ids.pop()).status is JobStatus.PENDING  # type: ignore[union-attr]
        clock.advance(20)  # 30 s after the last edit
        pool.wake("default")
        eventually(done.is_set)
        eventually(lambda: queue.count(status="completed") == 1)
    finally:
        pool.stop(10)
    assert ran == [(7, "final")]
    assert len(queue.find()) == 1


def test_replace_changes_the_pending_job_and_says_nothing_of_a_new_one(
    queue: DurableQueue, clock: FakeClock
) -> None:
    @queue.task("remind")
    def remind(user_id: int, text: str) -> None: ...

    sent: list[Any] = []
    receiver = lambda sender, **kw: sent.append(kw["job"].id)  # noqa: E731
    signals.job_enqueued.connect(receiver)
    try:
        first = remind.options(unique_key="u1", delay=3600).enqueue(1, "at 9")
        moved = remind.options(unique_key="u1", on_duplicate="replace", delay=600).enqueue(
            1, "at 10"
        )
        kept = remind.options(unique_key="u1").enqueue(1, "ignored")
    finally:
        signals.job_enqueued.disconnect(receiver)
    assert moved.id == kept.id == first.id
    assert moved.run_at == START + 600
    assert kept.decoded_payload() == moved.decoded_payload() != first.decoded_payload()
    assert sent == [first.id]  # job_enqueued: for the new job only


def test_bulk_enqueue_with_debounce_keeps_the_last_call(
    queue: DurableQueue, clock: FakeClock
) -> None:
    @queue.task("reindex")
    def reindex(doc_id: int) -> None: ...

    ids = reindex.enqueue_many([(1,), (2,), (3,)], unique_key="all", debounce=5)
    assert len(set(ids)) == 1
    job = queue.get(ids[0])
    assert job is not None
    assert (job.payload, job.run_at) == (reindex.encode((3,), {}), START + 5)


def test_throttle_returns_the_job_of_the_window_even_once_it_ran(
    queue: DurableQueue, clock: FakeClock
) -> None:
    sent: list[str] = []

    @queue.task("digest")
    def digest(user_id: int, note: str) -> None:
        sent.append(note)

    throttled = digest.options(unique_key="user-1", throttle=3600)
    first = throttled.enqueue(1, "first")
    queue.run_until_empty()
    clock.advance(600)
    again = throttled.enqueue(1, "second")
    assert (again.id, again.status) == (first.id, JobStatus.COMPLETED)
    clock.advance(3000)  # an hour after the first
    third = throttled.enqueue(1, "third")
    queue.run_until_empty()
    assert third.id != first.id
    assert sent == ["first", "third"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"debounce": 30}, "debounce= needs a unique_key"),
        ({"on_duplicate": "replace"}, "on_duplicate= needs a unique_key"),
        ({"unique_key": "k", "on_duplicate": "newest"}, "on_duplicate must be one of"),
        ({"unique_key": "k", "debounce": 0}, "debounce must be more than 0 seconds"),
        ({"unique_key": "k", "debounce": 30, "delay": 5}, "without delay= or run_at="),
        ({"unique_key": "k", "debounce": 30, "on_duplicate": "keep"}, 'on_duplicate="keep"'),
        ({"throttle": 60}, "throttle= needs a unique_key"),
        ({"unique_key": "k", "throttle": -1}, "throttle must be more than 0 seconds"),
        ({"unique_key": "k", "throttle": 60, "debounce": 5}, "cannot go with"),
    ],
)
def test_bad_policies_are_refused_before_writing(
    queue: DurableQueue, options: dict[str, Any], message: str
) -> None:
    @queue.task("reindex")
    def reindex(doc_id: int) -> None: ...

    with pytest.raises(ValueError, match=message):
        reindex.options(**options).enqueue(1)
    with pytest.raises(ValueError, match=message):
        queue.enqueue_many("reindex", [(1,)], **options)
    assert queue.find() == []
