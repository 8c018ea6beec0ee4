"""``move_pending_jobs`` (``jobq move-jobs``) between any two backends, on real
servers: SQLite files, PostgreSQL schemas and Redis key prefixes.

What it promises: every pending job ends up waiting in exactly one of the two
storages, except, if the move is interrupted, at most the batch in flight, which
may wait in both; running it again finishes the move without copying a job twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobq.job import JobError, JobStatus
from jobq.storage.base import NewJob, Storage
from jobq.storage.transfer import move_pending_jobs
from tests.contract._backends import make_spec, open_storage, release_spec

NOW = 1_000_000.0
DEADLINE = 60

PAIRS = [
    pytest.param(("sqlite3", "redis"), marks=[pytest.mark.redis], id="sqlite-to-redis"),
    pytest.param(
        ("redis", "postgres"),
        marks=[pytest.mark.redis, pytest.mark.postgres],
        id="redis-to-postgres",
    ),
    pytest.param(
        ("postgres", "redis"),
        marks=[pytest.mark.redis, pytest.mark.postgres],
        id="postgres-to-redis",
    ),
    pytest.param(("redis", "sqlite3"), marks=[pytest.mark.redis], id="redis-to-sqlite"),
    pytest.param(("redis", "redis"), marks=[pytest.mark.redis], id="redis-to-redis"),
]


@pytest.fixture
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Storage, Storage]]:
    """Two fresh, empty storages: (source, target); their specs in ``request.node.specs``."""
    from_backend, to_backend = request.param
    specs = [make_spec(from_backend, tmp_path / "from"), make_spec(to_backend, tmp_path / "to")]
    (tmp_path / "from").mkdir()
    (tmp_path / "to").mkdir()
    request.node.specs = specs
    opened: list[Storage] = []
    try:
        for spec in specs:
            opened.append(open_storage(spec))
        yield opened[0], opened[1]
    finally:
        for storage in opened:
            storage.close()
        for spec in specs:
            release_spec(spec)


def waiting_payloads(storage: Storage) -> list[str]:
    """Payloads of every pending job, page by page."""
    payloads: list[str] = []
    after = None
    while page := storage.list_jobs(status=JobStatus.PENDING, after_id=after, limit=1000):
        payloads += [job.payload for job in page]
        after = page[-1].id
    return payloads


@pytest.mark.parametrize("pair", PAIRS, indirect=True)
def test_moves_waiting_jobs_with_their_fields_and_leaves_held_ones(
    pair: tuple[Storage, Storage],
) -> None:
    source, target = pair
    busy = source.enqueue(NewJob("record", '["busy"]', priority=9), now=NOW).job
    due = source.enqueue(NewJob("record", '["due"]', queue="mail"), now=NOW).job
    later = source.enqueue(
        NewJob(
            "record",
            '["later"]',
            priority=5,
            run_at=NOW + 3600,
            unique_key="r-7",
            expires_at=NOW + 7200,
            limit_key="acct-1",
        ),
        now=NOW,
    ).job
    [held] = source.claim(["default"], owner="w", now=NOW, lease_seconds=30)
    assert held.id == busy.id
    tried = source.enqueue(NewJob("record", '["tried"]', max_attempts=3), now=NOW).job
    [lease] = source.claim(["default"], owner="w", now=NOW, lease_seconds=30)
    assert lease.id == tried.id
    error = JobError("ValueError", "once", None)
    assert source.fail(tried.id, lease.lease_token or "", error, now=NOW, retry_at=NOW + 60) == (
        JobStatus.PENDING
    )

    report = move_pending_jobs(source, target, batch_size=2, now=NOW + 1)

    assert (report.moved, report.processing) == (3, 1)
    assert sorted(report.id_map) == sorted([due.id, later.id, tried.id])
    moved = {job.payload: job for job in target.list_jobs(limit=100)}
    assert sorted(moved) == ['["due"]', '["later"]', '["tried"]']
    assert {job.status for job in moved.values()} == {JobStatus.PENDING}
    assert {report.id_map[job.id] for job in (due, later, tried)} == {
        job.id for job in moved.values()
    }
    scheduled = moved['["later"]']
    assert (
        scheduled.name,
        scheduled.queue,
        scheduled.priority,
        scheduled.run_at,
        scheduled.unique_key,
        scheduled.expires_at,
        scheduled.limit_key,
        scheduled.max_attempts,
    ) == ("record", "default", 5, NOW + 3600, "r-7", NOW + 7200, "acct-1", 3)
    assert (moved['["due"]'].queue, moved['["due"]'].run_at) == ("mail", NOW)
    retried = moved['["tried"]']
    assert (retried.run_at, retried.max_attempts, retried.attempts) == (NOW + 60, 2, 0)
    for job in (due, later, tried):
        assert (source_job := source.get(job.id)) is not None
        assert source_job.status is JobStatus.CANCELLED
    assert (held_now := source.get(busy.id)) is not None
    assert held_now.status is JobStatus.PROCESSING
    # The target runs them: claim order is the source's (priority, then run time).
    claimed = target.claim(["default", "mail"], owner="t", now=NOW + 61, lease_seconds=30, limit=5)
    assert [job.payload for job in claimed] == ['["due"]', '["tried"]']

    again = move_pending_jobs(source, target, now=NOW + 2)
    assert (again.moved, again.processing) == (0, 1)
    assert len(target.list_jobs(limit=100)) == 3


class Interrupted(Exception):
    """Stands for Ctrl-C or a lost connection in the middle of a move."""


def interrupt_after(storage: Storage, method: str, calls: int, monkeypatch: Any) -> None:
    """Let ``storage.<method>`` run ``calls`` times, then raise :class:`Interrupted`."""
    real = getattr(storage, method)
    count = 0

    def once_too_often(*args: object, **kwargs: object) -> object:
        nonlocal count
        count += 1
        if count > calls:
            raise Interrupted(method)
        return real(*args, **kwargs)

    monkeypatch.setattr(storage, method, once_too_often)


@pytest.mark.parametrize("pair", PAIRS, indirect=True)
@pytest.mark.parametrize(
    ("method", "calls", "doubled", "left"),
    [
        ("enqueue_many", 2, 0, 25),  # the third batch never reached the target
        ("request_cancel", 23, 7, 22),  # the third batch reached it, 3 of its 10 cancelled
    ],
)
def test_an_interrupted_move_loses_nothing_and_doubles_at_most_its_batch(
    pair: tuple[Storage, Storage],
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    calls: int,
    doubled: int,
    left: int,
) -> None:
    source, target = pair
    payloads = [json.dumps([n]) for n in range(45)]
    source.enqueue_many([NewJob("record", payload) for payload in payloads], now=NOW)
    interrupt_after(source if method == "request_cancel" else target, method, calls, monkeypatch)

    with pytest.raises(Interrupted):
        move_pending_jobs(source, target, batch_size=10, now=NOW + 1)

    both = Counter(waiting_payloads(source)) + Counter(waiting_payloads(target))
    assert set(both) == set(payloads)  # nothing lost
    assert sum(both.values()) - len(payloads) == doubled  # at most the batch in flight

    monkeypatch.undo()
    report = move_pending_jobs(source, target, batch_size=10, now=NOW + 2)
    assert report.moved == left
    assert waiting_payloads(source) == []
    in_target = Counter(waiting_payloads(target))
    assert set(in_target) == set(payloads)
    assert sum(in_target.values()) - len(payloads) == doubled


CHILD = Path(__file__).with_name("_move_child.py")


@pytest.mark.parametrize("pair", PAIRS, indirect=True)
def test_a_move_killed_mid_way_loses_nothing_and_a_second_run_finishes_it(
    pair: tuple[Storage, Storage], request: pytest.FixtureRequest
) -> None:
    source, target = pair
    payloads = [json.dumps([n]) for n in range(2000)]
    for start in range(0, len(payloads), 500):
        batch = payloads[start : start + 500]
        source.enqueue_many([NewJob("record", payload) for payload in batch], now=NOW)
    from_spec, to_spec = (json.dumps(spec) for spec in request.node.specs)
    child = subprocess.Popen(
        [sys.executable, str(CHILD), from_spec, to_spec, "25"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        for _ in range(3):  # the child says each time a batch reached the target
            assert child.stdout.readline() == "copied\n"
        child.kill()  # SIGKILL, no cleanup: somewhere in the third batch's cancels or later
        assert child.wait(DEADLINE) == -9  # killed mid-way, not finished
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()

    both = Counter(waiting_payloads(source)) + Counter(waiting_payloads(target))
    assert set(both) == set(payloads)  # nothing lost
    doubled = sum(both.values()) - len(payloads)
    assert 0 <= doubled <= 25

    move_pending_jobs(source, target, batch_size=25, now=NOW + 2)
    assert waiting_payloads(source) == []
    in_target = Counter(waiting_payloads(target))
    assert set(in_target) == set(payloads)
    assert sum(in_target.values()) - len(payloads) == doubled


@pytest.mark.redis
def test_a_move_into_the_same_database_moves_each_job_once(tmp_path: Path) -> None:
    spec = make_spec("redis", tmp_path)
    storage = open_storage(spec)
    try:
        storage.enqueue_many([NewJob("record", json.dumps([n])) for n in range(7)], now=NOW)
        report = move_pending_jobs(storage, storage, batch_size=2, now=NOW + 1)
        assert report.moved == 7  # the copies, newer than the start, are not moved again
        assert sorted(waiting_payloads(storage)) == sorted(json.dumps([n]) for n in range(7))
    finally:
        storage.close()
        release_spec(spec)


BATCH_SOURCES = [
    pytest.param(("sqlite3", "sqlite3"), id="sqlite-to-sqlite"),
    pytest.param(("postgres", "sqlite3"), marks=[pytest.mark.postgres], id="postgres-to-sqlite"),
    pytest.param(("redis", "sqlite3"), marks=[pytest.mark.redis], id="redis-to-sqlite"),
]


@pytest.mark.parametrize("pair", BATCH_SOURCES, indirect=True)
def test_pending_jobs_of_a_batch_are_refused_and_nothing_moves(
    pair: tuple[Storage, Storage],
) -> None:
    from jobq.storage.batches import NewBatch

    source, target = pair
    alone = source.enqueue(NewJob("record", '["alone"]'), now=NOW).job
    batch = source.create_batch(NewBatch(on_complete="report"), now=NOW)
    source.enqueue_in_batch(batch.id, [NewJob("record", '["in batch"]')] * 2, now=NOW)
    source.seal_batch(batch.id, now=NOW)

    with pytest.raises(ValueError, match="2 pending job\\(s\\) of the source belong to batches"):
        move_pending_jobs(source, target, batch_size=1, now=NOW + 1)

    assert target.list_jobs(limit=10) == []
    assert sorted(waiting_payloads(source)) == ['["alone"]', '["in batch"]', '["in batch"]']
    assert (state := source.batch(batch.id)) is not None
    assert state.callback_job_ids == ()
    assert (job := source.get(alone.id)) is not None
    assert job.status is JobStatus.PENDING


@pytest.mark.parametrize("pair", PAIRS, indirect=True)
def test_a_job_whose_unique_key_the_target_holds_joins_that_job(
    pair: tuple[Storage, Storage],
) -> None:
    source, target = pair
    held = target.enqueue(NewJob("record", '["there"]', unique_key="r-7"), now=NOW).job
    other = source.enqueue(NewJob("record", '["here"]', unique_key="r-7"), now=NOW).job

    report = move_pending_jobs(source, target, now=NOW + 1)

    assert report.id_map == {other.id: held.id}
    assert waiting_payloads(target) == ['["there"]']
    assert (moved := source.get(other.id)) is not None
    assert moved.status is JobStatus.CANCELLED


@pytest.mark.parametrize("pair", BATCH_SOURCES, indirect=True)
def test_jobs_waiting_for_others_are_refused_and_nothing_moves(
    pair: tuple[Storage, Storage],
) -> None:
    source, target = pair
    first = source.enqueue(NewJob("record", '["first"]'), now=NOW).job
    source.enqueue(NewJob("record", '["after"]', depends_on=(first.id,)), now=NOW)

    with pytest.raises(ValueError, match="1 job\\(s\\) of the source wait for other jobs"):
        move_pending_jobs(source, target, now=NOW + 1)

    assert target.list_jobs(limit=10) == []
    assert sorted(waiting_payloads(source)) == ['["after"]', '["first"]']
