"""DurableQueue's filters and bulk actions: find, count, retry_all, cancel_all and
delete_all, on a real SQLite file driven with run_until_empty and a fake clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from jobq import BulkResult, DurableQueue, JobFilter, JobStatus, PayloadMatch
from jobq.testing import FakeClock
from tests.helpers import MakeQueue

START = 1_800_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def queue(make_queue: MakeQueue, clock: FakeClock) -> DurableQueue:
    return make_queue(clock=clock)


def _failing(queue: DurableQueue) -> None:
    @queue.task("send_email", max_attempts=1)
    def send_email(user_id: int, subject: str = "hi") -> None:
        if subject != "ok":
            raise RuntimeError(f"cannot mail {user_id}")

    @queue.task("resize", max_attempts=1, queue="images")
    def resize(user_id: int) -> None:
        raise RuntimeError("no")


def test_args_match_keywords_and_the_registered_tasks_positions(queue: DurableQueue) -> None:
    _failing(queue)
    a = queue.enqueue("send_email", 42).id
    b = queue.enqueue("send_email", user_id=42).id
    queue.enqueue("send_email", "42")
    queue.enqueue("resize", 42)
    # Without a task name the position of user_id is unknown: keyword arguments only.
    assert [j.id for j in queue.find(args={"user_id": 42})] == [b]
    assert [j.id for j in queue.find(name="send_email", args={"user_id": 42})] == [a, b]
    assert queue.count(name="send_email", args={"user_id": 42}) == 2
    assert queue.count(name="send_email", args={"subject": "hi"}) == 0  # defaults are not stored
    assert queue.count(queue="images") == 1
    assert queue.job_filter(name="send_email", args={"user_id": 42}) == JobFilter(
        name="send_email", payload=(PayloadMatch("user_id", 42, 0),)
    )


def test_retry_all_cancel_all_delete_all(queue: DurableQueue, clock: FakeClock) -> None:
    _failing(queue)
    for user in range(5):
        queue.enqueue("send_email", user)
    queue.enqueue("resize", 1)
    queue.run_until_empty()
    assert queue.count(status="failed") == 6
    clock.advance(60)
    result = queue.retry_all(status="failed", name="send_email", older_than=timedelta(seconds=30))
    assert result == BulkResult(changed=5, skipped=0)
    assert queue.count(status=JobStatus.PENDING) == 5
    assert queue.cancel_all(name="send_email", args={"user_id": 3}) == BulkResult(1)
    assert queue.count(status=["pending", "cancelled"]) == 5
    assert queue.delete_all(status="pending", queue="default") == BulkResult(4)
    assert queue.count() == 2
    counts = queue.stats().queues
    assert counts["default"].counts[JobStatus.CANCELLED] == 1
    assert counts["images"].counts[JobStatus.FAILED] == 1


def test_bulk_actions_without_a_filter_refuse(queue: DurableQueue) -> None:
    _failing(queue)
    queue.enqueue("send_email", 1)
    for action in (queue.retry_all, queue.cancel_all, queue.delete_all):
        with pytest.raises(ValueError, match=r"give at least one filter; .*status="):
            action()
    assert queue.count() == 1


def test_times_accept_epoch_seconds_and_aware_datetimes(
    queue: DurableQueue, clock: FakeClock
) -> None:
    _failing(queue)
    first = queue.enqueue("send_email", 1).id
    clock.advance(100)
    second = queue.enqueue("send_email", 2).id
    middle = datetime.fromtimestamp(START + 50, tz=timezone.utc)
    assert [j.id for j in queue.find(created_after=middle)] == [second]
    assert [j.id for j in queue.find(created_before=START + 50)] == [first]
    assert [j.id for j in queue.find(older_than=50)] == [first]
    assert [j.id for j in queue.find(newest_first=True, limit=1)] == [second]
    assert [j.id for j in queue.find(after=first)] == [second]
    with pytest.raises(ValueError, match="aware datetime"):
        queue.find(created_after=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="older_than"):
        queue.find(older_than=-1)
    with pytest.raises(ValueError, match="statuses"):
        queue.find(status="done")
    with pytest.raises(ValueError, match="identifier"):
        queue.find(args={"user id": 1})
