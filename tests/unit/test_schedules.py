"""Recurring schedules and task limits through the queue, with a fake clock: each
rule of a schedule, daylight-saving days, missed fires, pause/resume/trigger, and
two queues on one database standing in for two processes."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

import jobq
from jobq import DurableQueue, JobStatus
from jobq.schedules import Schedule
from jobq.testing import FakeClock
from tests.helpers import MakeQueue, eventually

NEW_YORK = ZoneInfo("America/New_York")
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp()


def local(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, NEW_YORK).isoformat()


def fires(schedule: Schedule, start: datetime, until: datetime) -> list[str]:
    out, moment = [], start.timestamp()
    while (moment := schedule.next_after(moment)) < until.timestamp():
        out.append(local(moment))
    return out


def cron(expr: str, tz: str = "America/New_York") -> Schedule:
    return Schedule("s", "t", "{}", cron=expr, tz=tz)


# -- the rules of a schedule -------------------------------------------------------------


def test_intervals_are_aligned_so_every_process_computes_the_same_times() -> None:
    every = Schedule("s", "t", "{}", every=300)
    assert every.next_after(T0 + 1) == T0 + 300
    assert every.next_after(T0 + 300) == T0 + 600
    assert every.next_after(T0 - 0.5) == T0


def test_cron_is_read_in_its_time_zone() -> None:
    schedule = cron("0 9 * * MON-FRI")
    start = datetime(2026, 6, 5, 10, 0, tzinfo=NEW_YORK)  # a Friday, after 09:00
    assert fires(schedule, start, datetime(2026, 6, 10, tzinfo=NEW_YORK)) == [
        "2026-06-08T09:00:00-04:00",
        "2026-06-09T09:00:00-04:00",
    ]


def test_spring_forward_runs_a_skipped_time_once_just_after_the_jump() -> None:
    # 2026-03-08: New York clocks jump from 02:00 to 03:00; 02:30 does not exist.
    got = fires(
        cron("30 2 * * *"),
        datetime(2026, 3, 7, 12, tzinfo=NEW_YORK),
        datetime(2026, 3, 10, tzinfo=NEW_YORK),
    )
    assert got == ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]
    hourly = fires(
        cron("0 * * * *"),
        datetime(2026, 3, 7, 23, 30, tzinfo=NEW_YORK),
        datetime(2026, 3, 9, tzinfo=NEW_YORK),
    )
    assert len(hourly) == 23  # a 23-hour day


def test_fall_back_runs_a_repeated_time_once_and_hourly_jobs_25_times() -> None:
    # 2026-11-01: clocks go back from 02:00 EDT to 01:00 EST; 01:30 happens twice.
    got = fires(
        cron("30 1 * * *"),
        datetime(2026, 10, 31, 12, tzinfo=NEW_YORK),
        datetime(2026, 11, 3, tzinfo=NEW_YORK),
    )
    assert got == ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
    hourly = fires(
        cron("0 * * * *"),
        datetime(2026, 10, 31, 23, 30, tzinfo=NEW_YORK),
        datetime(2026, 11, 2, tzinfo=NEW_YORK),
    )
    assert len(hourly) == 25  # a 25-hour day
    assert hourly[1:3] == ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00"]


@pytest.mark.parametrize(
    ("missed", "expected"),
    [("once", [T0 + 3000]), ("all", [T0 + 600 * n for n in range(1, 6)]), ("skip", [])],
)
def test_missed_fire_policies(missed: str, expected: list[float]) -> None:
    schedule = Schedule("s", "t", "{}", every=600, missed=missed)  # type: ignore[arg-type]
    times, upcoming = schedule.plan(T0 + 600, now=T0 + 3100)  # five fires missed
    assert times == expected
    assert upcoming == T0 + 3600


def test_a_fire_on_time_runs_whatever_the_policy() -> None:
    for missed in ("once", "all", "skip"):
        schedule = Schedule("s", "t", "{}", every=600, missed=missed)  # type: ignore[arg-type]
        assert schedule.plan(T0 + 600, now=T0 + 601) == ([T0 + 600], T0 + 1200)


def test_all_missed_fires_are_capped() -> None:
    schedule = Schedule("s", "t", "{}", every=60, missed="all", max_missed=3)
    times, _ = schedule.plan(T0, now=T0 + 6000)
    assert len(times) == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cron": "61 * * * *"}, "bad cron"),
        ({"cron": "* * *"}, "five fields"),
        ({"cron": "* * * * *", "every": 5}, "not both"),
        ({}, "not both or neither"),
        ({"every": 0.5}, "at least 1 second"),
        ({"cron": "* * * * *", "tz": "Mars/Olympus"}, "unknown time zone"),
        ({"every": 5, "missed": "sometimes"}, "missed must be"),
    ],
)
def test_bad_schedules_are_refused_clearly(options: dict[str, object], message: str) -> None:
    with pytest.raises(jobq.ConfigurationError, match=message):
        Schedule("s", "t", "{}", **options)  # type: ignore[arg-type]


# -- through the queue -------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + 1)


def report_queue(make_queue: MakeQueue, clock: FakeClock, name: str = "jobs") -> DurableQueue:
    queue = make_queue(name, clock=clock)

    @queue.periodic(every=60, name="report")
    def report() -> str:
        return "done"

    return queue


def test_each_fire_time_becomes_one_job_even_with_two_processes(
    make_queue: MakeQueue, clock: FakeClock
) -> None:
    first = report_queue(make_queue, clock)
    second = report_queue(make_queue, clock)  # another process, same database
    assert first.fire_due_schedules() == []  # stored; first fire at T0 + 60
    for minute in range(1, 6):
        clock.advance(60)
        fired = first.fire_due_schedules() + second.fire_due_schedules()
        assert len(fired) == 1, minute
    jobs = first.list(name="report")
    assert len(jobs) == 5
    info = first.schedules()[0]
    assert (info.name, info.task, info.every, info.next_fire_at) == (
        "report",
        "report",
        60,
        T0 + 360,
    )
    assert info.last_job_id == jobs[-1].id
    assert first.run_until_empty() == 5


def test_downtime_runs_missed_fires_once_by_default(
    make_queue: MakeQueue, clock: FakeClock
) -> None:
    queue = report_queue(make_queue, clock)
    queue.fire_due_schedules()
    clock.advance(3600)  # nobody ran for an hour
    assert len(queue.fire_due_schedules()) == 1
    assert queue.schedules()[0].next_fire_at == T0 + 3660


def test_pause_resume_and_trigger(make_queue: MakeQueue, clock: FakeClock) -> None:
    queue = report_queue(make_queue, clock)
    queue.fire_due_schedules()
    assert queue.pause_schedule("report").paused
    clock.advance(600)
    assert queue.fire_due_schedules() == []
    triggered = queue.trigger_schedule("report")  # runs now, paused or not
    assert triggered.name == "report"
    resumed = queue.resume_schedule("report")
    assert not resumed.paused
    assert resumed.next_fire_at == T0 + 660  # what was missed while paused is skipped
    clock.advance(60)
    assert len(queue.fire_due_schedules()) == 1
    with pytest.raises(KeyError, match="no schedule named 'nope'"):
        queue.pause_schedule("nope")


def test_schedule_arguments_are_checked_when_declared(
    make_queue: MakeQueue, clock: FakeClock
) -> None:
    queue = make_queue(clock=clock)

    @queue.task("greet")
    def greet(name: str, loud: bool = False) -> str:
        return name.upper() if loud else name

    with pytest.raises(TypeError, match="cannot enqueue greet"):
        queue.schedule(greet, every=60, args=[1, 2, 3])
    with pytest.raises(jobq.UnknownTask):
        queue.schedule("missing", every=60)
    queue.schedule(greet, cron="* * * * *", name="greeter", args=["ada"], kwargs={"loud": True})
    queue.fire_due_schedules()
    clock.advance(120)
    [job_id] = queue.fire_due_schedules()
    queue.run_until_empty()
    assert queue.get(job_id).decoded_result() == "ADA"
    info = queue.schedules()[0].as_dict()
    assert (info["args"], info["kwargs"], info["cron"]) == (["ada"], {"loud": True}, "* * * * *")


# -- task limits through the queue ----------------------------------------------------------


def test_task_limits_are_checked_and_reach_the_claims(make_queue: MakeQueue) -> None:
    queue = make_queue()
    with pytest.raises(ValueError, match="rate_limit must look like"):
        queue.task("bad", rate_limit="ten a second")
    with pytest.raises(ValueError, match="concurrency_limit"):
        queue.task("bad", concurrency_limit=0)

    @queue.task("report", concurrency_limit=1, rate_limit="2/m")
    def report() -> None: ...

    assert report.limits == jobq.storage.TaskLimit(1, 2, 60.0, None)
    report.enqueue()
    report.enqueue()
    pool = queue.start_workers(concurrency=2)
    try:
        eventually(lambda: queue.stats().queues["default"].counts[JobStatus.COMPLETED] == 2)
    finally:
        pool.stop()
