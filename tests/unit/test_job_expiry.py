"""Job expiry at the queue: the options, the sweep a worker pool runs, and a real
pool that never runs an expired job (time from a FakeClock; both backends)."""

from __future__ import annotations

import logging

import pytest

from jobq import JobStatus, signals
from jobq.testing import FakeClock
from jobq.worker.expiry import ExpirySweeper
from tests.helpers import MakeQueue, eventually


def test_an_expired_job_is_passed_over_then_swept_into_cancelled(
    make_queue: MakeQueue, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    queue = make_queue(clock=clock)
    ran: list[int] = []

    @queue.task("remind")
    def remind(user_id: int) -> None:
        ran.append(user_id)

    job = remind.options(expires_in=3600).enqueue(7)
    assert job.expires_at == clock.now() + 3600
    kept = remind.options(expires_in=3600).enqueue(8)
    assert queue.run_until_empty(max_jobs=1) == 1  # before its expiry it runs as usual
    assert ran == [7]
    assert queue.get(kept.id).status is JobStatus.PENDING

    clock.advance(3600)
    now = clock.now()
    assert queue.storage.claim(["default"], owner="t", now=now, lease_seconds=30, limit=5) == []
    heard: list[tuple[int, ...]] = []

    def on_expired(sender: object, *, ids: tuple[int, ...]) -> None:
        heard.append(ids)

    signals.job_expired.connect(on_expired)
    try:
        with caplog.at_level(logging.INFO, logger="jobq.worker"):
            assert ExpirySweeper(queue, next_run=clock.now()).run_once(clock.now()) == [kept.id]
    finally:
        signals.job_expired.disconnect(on_expired)
    assert heard == [(kept.id,)]
    assert "1 jobs expired before they started" in caplog.text
    ended = queue.get(kept.id)
    assert ended.status is JobStatus.CANCELLED
    assert ended.error is not None
    assert ended.error.type == "Expired"
    assert ended.error.message.endswith("before it started")
    assert ran == [7]
    assert queue.stats().queues["default"].counts[JobStatus.CANCELLED] == 1


def test_run_until_empty_ends_expired_jobs_as_a_pool_does(
    make_queue: MakeQueue, clock: FakeClock
) -> None:
    queue = make_queue(clock=clock)
    ran: list[int] = []

    @queue.task("remind")
    def remind(user_id: int) -> None:
        ran.append(user_id)

    job = remind.options(delay=5, expires_in=10).enqueue(1)
    clock.advance(16)
    assert queue.run_until_empty() == 0
    assert ran == []
    assert queue.get(job.id).status is JobStatus.CANCELLED


def test_enqueue_many_and_expires_at_store_the_expiry(
    make_queue: MakeQueue, clock: FakeClock
) -> None:
    queue = make_queue(clock=clock)

    @queue.task("remind")
    def remind(user_id: int) -> None: ...

    ids = remind.enqueue_many([(1,), (2,)], expires_in=60)
    ids += queue.enqueue_many("remind", [(3,)], expires_at=clock.now() + 30)
    assert [queue.get(i).expires_at for i in ids] == [clock.now() + 60] * 2 + [clock.now() + 30]
    later = remind.options(delay=10, expires_in=20).enqueue(4)  # counted from when it is due
    assert (later.run_at, later.expires_at) == (clock.now() + 10, clock.now() + 30)
    at = remind.options(run_at=clock.now() + 100, expires_in=5).enqueue(5)
    assert at.expires_at == clock.now() + 105


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"expires_in": 0}, "expires_in must be seconds > 0"),
        ({"expires_in": float("nan")}, "expires_in must be seconds > 0"),
        ({"expires_in": 5, "expires_at": 1e9}, "either expires_in= or expires_at="),
        ({"expires_at": "tomorrow"}, "expires_at must be finite epoch seconds"),
        ({"run_at": 2e9, "expires_at": 2e9 - 1}, "could never run"),
    ],
)
def test_bad_expiry_options_name_the_option(
    make_queue: MakeQueue, clock: FakeClock, options: dict[str, object], words: str
) -> None:
    queue = make_queue(clock=clock)

    @queue.task("remind")
    def remind(user_id: int) -> None: ...

    with pytest.raises(ValueError, match=words):
        remind.options(**options).enqueue(1)  # type: ignore[arg-type]
    assert queue.list() == []


def test_an_expiry_already_past_at_enqueue_is_refused(
    make_queue: MakeQueue, clock: FakeClock
) -> None:
    queue = make_queue(clock=clock)

    @queue.task("remind")
    def remind(user_id: int) -> None: ...

    with pytest.raises(ValueError, match=r"remind: expires_at=.* could never run"):
        remind.options(expires_at=clock.now() - 1).enqueue(1)
    with pytest.raises(ValueError, match="could never run"):
        remind.enqueue_many([(1,)], expires_at=clock.now())
    assert queue.list() == []


def test_a_worker_pool_never_runs_an_expired_job_and_ends_it(
    make_queue: MakeQueue, clock: FakeClock
) -> None:
    queue = make_queue(clock=clock)
    ran: list[int] = []

    @queue.task("remind")
    def remind(user_id: int) -> None:
        ran.append(user_id)

    expired = remind.options(expires_in=60).enqueue(1)
    clock.advance(61)
    fresh = remind.options(expires_in=60).enqueue(2)
    pool = queue.start_workers(concurrency=2)
    try:
        eventually(lambda: queue.get(fresh.id).status is JobStatus.COMPLETED)
        eventually(lambda: queue.get(expired.id).status is JobStatus.CANCELLED)
    finally:
        pool.stop()
    assert ran == [2]
    error = queue.get(expired.id).error
    assert error is not None
    assert error.type == "Expired"


def test_a_task_level_expiry_is_the_default_of_every_enqueue(
    make_queue: MakeQueue, clock: FakeClock
) -> None:
    queue = make_queue(clock=clock)

    @queue.task("remind", expires_in=600)
    def remind(user_id: int) -> None: ...

    now = clock.now()
    assert remind.enqueue(1).expires_at == now + 600
    assert queue.enqueue("remind", 2).expires_at == now + 600
    assert queue.enqueue_by_name("remind", [3]).expires_at == now + 600
    (many,) = remind.enqueue_many([(4,)])
    assert queue.get(many).expires_at == now + 600
    assert remind.options(delay=60).enqueue(5).expires_at == now + 660
    assert remind.options(expires_in=5).enqueue(6).expires_at == now + 5
    assert remind.options(expires_at=now + 7).enqueue(7).expires_at == now + 7
    with pytest.raises(ValueError, match="expires_in must be seconds > 0"):
        queue.task("bad", expires_in=0)
