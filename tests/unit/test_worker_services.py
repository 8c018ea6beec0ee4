"""The worker pool's upkeep services, one step at a time: a FakeClock, a real SQLite
file, no threads. Each service is driven with ``run_once(now)`` or ``tick(now)``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from jobq import DurableQueue, Job, JobStatus, Retention, signals
from jobq.context import JobContext
from jobq.storage.base import RenewResult
from jobq.testing import FakeClock
from jobq.worker.execute import claim, new_context, record, run_attempt
from jobq.worker.services import (
    MAX_RESCUE_INTERVAL,
    Heartbeat,
    LeaseRescuer,
    RetentionCleaner,
    ScheduleFirer,
    Service,
)

START = 1_800_000_000.0  # a whole number of minutes since the epoch
LEASE = 30.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def queue(tmp_path: Path, clock: FakeClock) -> Iterator[DurableQueue]:
    made = DurableQueue(
        tmp_path / "jobs.db",
        clock=clock,
        lease_seconds=LEASE,
        retention=Retention(completed=100.0, failed=None, cancelled=50.0),
    )
    made.task("noop")(lambda: None)
    made.task("boom", max_attempts=1)(_boom)
    yield made
    made.close()


def _boom() -> None:
    raise ValueError("boom")


def claimed(queue: DurableQueue, task: str = "noop") -> Job:
    """Enqueue a job of ``task`` and claim it at the clock's time, as a worker would."""
    queue.enqueue(task)
    jobs = claim(queue, ["default"], owner="test", now=queue.clock.now(), limit=1)
    assert len(jobs) == 1
    return jobs[0]


def finish(queue: DurableQueue, task: str) -> int:
    """Run one job of ``task`` to its end at the clock's time; return its id."""
    context = new_context(queue, claimed(queue, task))
    record(queue, [(context, run_attempt(queue, context))], queue.clock.now())
    return context.job.id


# -- lease rescue -----------------------------------------------------------------------


def test_a_lease_is_rescued_exactly_when_now_reaches_its_expiry(
    queue: DurableQueue, clock: FakeClock
) -> None:
    job = claimed(queue)
    woken: list[bool] = []
    rescuer = LeaseRescuer(queue, next_run=START, on_rescued=lambda: woken.append(True))

    assert rescuer.run_once(START + LEASE - 0.5).total == 0
    assert queue.get(job.id).status is JobStatus.PROCESSING
    assert not woken

    rescued = rescuer.run_once(START + LEASE)
    assert rescued.requeued == (job.id,)
    assert queue.get(job.id).status is JobStatus.PENDING
    assert woken == [True]
    assert rescuer.run_once(START + LEASE + 1).total == 0  # once only


def test_rescue_is_announced_by_the_lease_expired_signal(queue: DurableQueue) -> None:
    job = claimed(queue)
    heard: list[dict[str, Any]] = []

    def receiver(sender: object, **kwargs: Any) -> None:
        heard.append({"sender": sender, **kwargs})

    with signals.job_lease_expired.connected_to(receiver):
        LeaseRescuer(queue, next_run=START).run_once(START + LEASE)
    assert heard == [{"sender": queue, "requeued": (job.id,), "failed": (), "cancelled": ()}]


def test_rescue_runs_every_half_lease_at_most_every_ten_seconds(
    tmp_path: Path, clock: FakeClock
) -> None:
    short = DurableQueue(tmp_path / "short.db", clock=clock, lease_seconds=4.0)
    long = DurableQueue(tmp_path / "long.db", clock=clock, lease_seconds=300.0)
    try:
        assert LeaseRescuer(short, next_run=START).interval == 2.0
        assert LeaseRescuer(long, next_run=START).interval == MAX_RESCUE_INTERVAL == 10.0
    finally:
        short.close()
        long.close()


# -- retention --------------------------------------------------------------------------


def test_retention_deletes_exactly_the_jobs_older_than_their_status_keeps(
    queue: DurableQueue, clock: FakeClock
) -> None:
    old = finish(queue, "noop")  # completed at START, kept 100 s
    failed = finish(queue, "boom")  # failed at START, kept forever
    clock.advance(40.0)
    young = finish(queue, "noop")  # completed at START + 40
    cleaner = RetentionCleaner(queue, next_run=START)

    assert cleaner.run_once(START + 100.0) == {JobStatus.COMPLETED: 0, JobStatus.CANCELLED: 0}
    assert cleaner.run_once(START + 100.5) == {JobStatus.COMPLETED: 1, JobStatus.CANCELLED: 0}
    assert [j.id for j in queue.list()] == [failed, young]
    assert cleaner.run_once(START + 140.5)[JobStatus.COMPLETED] == 1
    assert cleaner.run_once(START + 10**7)[JobStatus.COMPLETED] == 0
    assert [j.id for j in queue.list()] == [failed]
    assert old not in {j.id for j in queue.list()}


def test_retention_runs_at_its_interval(queue: DurableQueue) -> None:
    cleaner = RetentionCleaner(queue, next_run=START + 1.0)
    assert cleaner.interval == queue.retention.interval == 300.0
    assert not cleaner.tick(START + 0.5)
    assert cleaner.tick(START + 1.0)
    assert cleaner.next_run == START + 301.0
    assert not cleaner.tick(START + 300.5)
    assert cleaner.tick(START + 301.0)


# -- schedules --------------------------------------------------------------------------


def test_a_schedule_fires_once_per_fire_time(queue: DurableQueue) -> None:
    queue.schedule("noop", every=60.0, name="minutely")
    firer = ScheduleFirer(queue, next_run=START)

    assert firer.run_once(START) == []  # stored; its first fire time is START + 60
    assert firer.run_once(START + 59.5) == []
    first = firer.run_once(START + 60.0)
    assert len(first) == 1
    assert firer.run_once(START + 60.0) == []
    assert firer.run_once(START + 119.5) == []
    second = firer.run_once(START + 120.0)
    assert len(second) == 1
    assert second != first
    assert [j.id for j in queue.list(name="noop")] == first + second


def test_the_schedule_firer_waits_for_a_declared_schedule(queue: DurableQueue) -> None:
    firer = ScheduleFirer(queue, next_run=START)
    assert firer.punctual
    assert not firer.active
    assert not firer.tick(START + 5.0)
    assert firer.next_run == START  # unchanged: a schedule declared later fires at once

    queue.schedule("noop", every=60.0, name="minutely")
    assert firer.tick(START + 5.0)
    assert firer.next_run == START + 6.0
    assert [s.name for s in queue.schedules()] == ["minutely"]


# -- heartbeat --------------------------------------------------------------------------


class Heard:
    def __init__(self) -> None:
        self.calls: list[tuple[RenewResult, Sequence[JobContext]]] = []

    def __call__(self, result: RenewResult, held: Sequence[JobContext]) -> None:
        self.calls.append((result, held))


def test_a_heartbeat_keeps_a_lease_past_its_first_expiry(queue: DurableQueue) -> None:
    context = new_context(queue, claimed(queue))
    heard = Heard()
    heartbeat = Heartbeat(queue, next_run=START + LEASE / 3, held=lambda: [context], on_news=heard)
    rescuer = LeaseRescuer(queue, next_run=START)

    assert heartbeat.interval == LEASE / 3
    result = heartbeat.run_once(START + 20.0)
    assert result is not None
    assert result.renewed == {context.id}
    assert rescuer.run_once(START + LEASE).total == 0  # renewed until START + 50
    assert rescuer.run_once(START + 50.0).requeued == (context.id,)
    assert heard.calls == []  # nothing to tell


def test_a_heartbeat_tells_of_a_cancel_and_of_a_lost_lease(queue: DurableQueue) -> None:
    context = new_context(queue, claimed(queue))
    heard = Heard()
    heartbeat = Heartbeat(queue, next_run=START, held=lambda: [context], on_news=heard)

    queue.cancel(context.id)
    heartbeat.run_once(START + 1.0)
    assert [(r.cancel_requested, r.lost) for r, _ in heard.calls] == [
        (frozenset({context.id}), frozenset())
    ]
    assert heard.calls[0][1] == [context]

    LeaseRescuer(queue, next_run=START).run_once(START + 1.0 + LEASE)
    heartbeat.run_once(START + 2.0 + LEASE)
    assert heard.calls[1][0].lost == {context.id}


def test_a_heartbeat_with_nothing_held_does_nothing(queue: DurableQueue) -> None:
    heard = Heard()
    assert Heartbeat(queue, next_run=START, held=list, on_news=heard).run_once(START) is None
    assert heard.calls == []


# -- how the dispatcher drives them ------------------------------------------------------


class Flaky(Service):
    interval = 5.0

    def __init__(self, queue: DurableQueue) -> None:
        super().__init__(queue, next_run=START)
        self.runs: list[float] = []
        self.fail = True

    def run_once(self, now: float) -> None:
        self.runs.append(now)
        if self.fail:
            raise RuntimeError("database gone")


def test_a_service_that_fails_runs_again_at_the_next_tick(queue: DurableQueue) -> None:
    service = Flaky(queue)
    with pytest.raises(RuntimeError):
        service.tick(START)
    assert service.next_run == START  # not moved on: retried
    service.fail = False
    assert service.tick(START + 0.1)
    assert service.next_run == START + 5.1
    assert not service.tick(START + 5.0)
    assert service.runs == [START, START + 0.1]
