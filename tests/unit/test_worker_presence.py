"""A pool's row in the registry of live worker pools, one step at a time: the
:class:`~jobq.worker.presence.Presence` service driven with ``run_once(now)`` and
``tick(now)`` on a real SQLite file, time from a FakeClock, no threads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq import DurableQueue, WorkerInfo
from jobq.testing import FakeClock
from jobq.worker.presence import Presence, pool_owner

START = 1_800_000_000.0
LEASE = 30.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def queue(tmp_path: Path, clock: FakeClock) -> Iterator[DurableQueue]:
    made = DurableQueue(tmp_path / "jobs.db", clock=clock, lease_seconds=LEASE)
    yield made
    made.close()


class PoolState:
    """What a pool would report: its concurrency and whether it is stopping."""

    def __init__(self) -> None:
        self.concurrency = 4
        self.stopping = False

    def __call__(self) -> tuple[int, bool]:
        return self.concurrency, self.stopping


def presence(queue: DurableQueue, state: PoolState, name: str = "pool1") -> Presence:
    return Presence(
        queue,
        next_run=queue.clock.now(),
        owner=pool_owner(name),
        name=name,
        queues=["default", "mail"],
        state=state,
    )


def only(queue: DurableQueue) -> WorkerInfo:
    [info] = queue.workers()
    return info


def test_the_first_run_registers_the_pool(queue: DurableQueue) -> None:
    state = PoolState()
    service = presence(queue, state)
    assert queue.workers() == []
    assert service.tick(START)
    info = only(queue)
    assert info.owner == pool_owner("pool1")
    assert info.name == "pool1"
    assert (info.queues, info.concurrency, info.lease_seconds) == (("default", "mail"), 4, LEASE)
    assert (info.started_at, info.last_seen_at, info.stopping) == (START, START, False)


def test_it_is_seen_at_the_heartbeat_pace_and_ages_out_once_unseen(
    queue: DurableQueue, clock: FakeClock
) -> None:
    service = presence(queue, PoolState())
    service.tick(START)
    assert service.interval == LEASE / 3
    assert service.punctual
    clock.advance(LEASE / 3 - 1)
    assert not service.tick(clock.now())  # not due yet
    clock.advance(1)
    assert service.tick(clock.now())
    assert only(queue).last_seen_at == START + LEASE / 3
    # The pool is killed: nothing ticks any more. It stays live for one lease period...
    clock.advance(LEASE)
    assert only(queue).last_seen_at == START + LEASE / 3
    # ... and is gone once that has passed (or a shorter max_age, when asked).
    clock.advance(0.5)
    assert queue.workers() == []
    assert len(queue.workers(max_age=2 * LEASE)) == 1


def test_a_change_of_concurrency_or_stopping_is_recorded_at_the_next_tick(
    queue: DurableQueue, clock: FakeClock
) -> None:
    state = PoolState()
    service = presence(queue, state)
    service.tick(START)
    clock.advance(1)
    assert not service.tick(clock.now())  # nothing changed, not due
    state.concurrency = 9
    assert service.tick(clock.now())  # changed: at once
    assert (only(queue).concurrency, only(queue).last_seen_at) == (9, START + 1)
    state.stopping = True
    clock.advance(1)
    assert service.tick(clock.now())
    assert only(queue).stopping


def test_a_pool_whose_row_was_deleted_registers_again(queue: DurableQueue) -> None:
    service = presence(queue, PoolState())
    assert service.run_once(START) is True
    assert service.run_once(START + 1) is False  # seen: an UPDATE
    queue.storage.unregister_worker(service.owner)  # type: ignore[attr-defined]
    assert service.run_once(START + 2) is True
    assert only(queue).started_at == START + 2


def test_close_unregisters_at_once(queue: DurableQueue) -> None:
    one, two = presence(queue, PoolState(), "one"), presence(queue, PoolState(), "two")
    one.tick(START)
    two.tick(START)
    one.close()
    assert [info.name for info in queue.workers()] == ["two"]
    one.close()  # idempotent
    assert [info.name for info in queue.workers()] == ["two"]


def test_each_run_writes_the_busy_threads_and_the_process_identity(queue: DurableQueue) -> None:
    from jobq import WorkerThread
    from jobq.worker.identity import this_process

    busy: list[dict[str, object]] = []
    service = Presence(
        queue,
        next_run=START,
        owner=pool_owner("pool1"),
        name="pool1",
        queues=["default"],
        state=PoolState(),
        running=lambda: list(busy),
    )
    service.run_once(START)
    info = only(queue)
    me = this_process()
    assert (info.boot_id, info.pid_namespace, info.process_start) == (
        me.boot_id,
        me.pid_namespace,
        me.process_start,
    )
    assert info.threads == ()
    busy.append(
        {
            "id": 5,
            "name": "send",
            "queue": "default",
            "attempt": 1,
            "started_at": START + 1,
            "thread": "jobq-pool1-1",
            "timed_out": True,
            "stuck": True,
            "stuck_since": START + 4,
        }
    )
    busy.append({"id": 6, "name": "send", "started_at": None, "thread": None})  # not started
    service.run_once(START + 10)
    assert only(queue).threads == (WorkerThread(5, "send", "jobq-pool1-1", START + 1, START + 4),)
