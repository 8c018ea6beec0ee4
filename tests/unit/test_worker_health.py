"""The one health check that the web endpoint and ``jobq worker --health-port`` share:
:func:`jobq.worker.health.check_health`, on a real queue driven by a fake clock."""

from __future__ import annotations

import pytest

from jobq import DurableQueue
from jobq.testing import FakeClock
from jobq.worker.health import check_health, parse_max_age
from tests.helpers import MakeQueue

START = 1_800_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def queue(make_queue: MakeQueue, clock: FakeClock) -> DurableQueue:
    queue = make_queue(clock=clock)
    queue.task("report")(lambda: None)
    return queue


def test_a_queue_that_answers_is_healthy_and_says_so_in_every_field(queue: DurableQueue) -> None:
    report = check_health(queue)
    assert (report.healthy, report.status, report.http_status) == (True, "ok", 200)
    assert report.details() == {
        "healthy": True,
        "queue_reachable": True,
        "workers_expected": False,
        "workers_alive": False,
        "oldest_runnable_age": 0.0,
        "max_age": None,
        "problems": [],
    }


def test_max_age_fails_the_check_once_a_job_has_waited_longer(
    queue: DurableQueue, clock: FakeClock
) -> None:
    queue.enqueue("report")
    clock.advance(120)
    stale = check_health(queue, max_age=60)
    assert (stale.healthy, stale.status, stale.http_status) == (False, "unavailable", 503)
    assert stale.oldest_runnable_age == pytest.approx(120)
    assert stale.problems == ("a job has been runnable for 120.0 s, more than max_age 60 s",)
    assert check_health(queue, max_age=300).healthy
    assert check_health(queue).healthy  # no limit asked, no problem
    queue.pause()  # a paused queue's jobs wait on purpose
    assert check_health(queue, max_age=60).healthy


def test_where_workers_are_expected_the_pool_must_be_alive(queue: DurableQueue) -> None:
    missing = check_health(queue, workers_expected=True)
    assert missing.problems == ("no worker pool is running in this process",)
    pool = queue.start_workers(1)
    try:
        running = check_health(queue, pool=pool, workers_expected=True)
        assert (running.healthy, running.workers_alive) == (True, True)
    finally:
        pool.stop(5)
    stopped = check_health(queue, pool=pool, workers_expected=True)
    assert (stopped.healthy, stopped.workers_alive) == (False, False)
    # A web process that runs no workers is not unhealthy for a stopped pool.
    assert check_health(queue, pool=pool, workers_expected=False).healthy


def test_a_stopping_process_is_unhealthy_with_status_stopping(queue: DurableQueue) -> None:
    report = check_health(queue, stopping=True)
    assert (report.healthy, report.status, report.http_status) == (False, "stopping", 503)
    assert report.problems == ("the process is stopping: running jobs are finishing",)


def test_a_database_that_does_not_answer_is_a_problem_not_an_exception(queue: DurableQueue) -> None:
    queue.close()
    report = check_health(queue, max_age=60)
    assert (report.healthy, report.status, report.queue_reachable) == (False, "unavailable", False)
    assert report.oldest_runnable_age is None
    assert report.problems[0].startswith("the queue's database did not answer: StorageError: ")


@pytest.mark.parametrize(
    ("text", "expected"), [(None, None), ("0", 0.0), ("300", 300.0), ("2.5", 2.5)]
)
def test_parse_max_age_reads_seconds(text: str | None, expected: float | None) -> None:
    assert parse_max_age(text) == expected


@pytest.mark.parametrize("text", ["soon", "", "-1", "nan", "inf", "1e400"])
def test_parse_max_age_refuses_what_is_not_seconds_with_the_value_named(text: str) -> None:
    with pytest.raises(ValueError, match="max_age must be a number of seconds") as caught:
        parse_max_age(text)
    assert repr(text) in str(caught.value)


def test_check_health_refuses_a_negative_max_age(queue: DurableQueue) -> None:
    with pytest.raises(ValueError, match="max_age must be a number of seconds >= 0, got -1"):
        check_health(queue, max_age=-1)
