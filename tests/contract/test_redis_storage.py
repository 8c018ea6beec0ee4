"""What is particular to the Redis backend: the claim script under real threads and
processes, the server's clock, key prefixes, the claim order's byte encoding,
scripts reloaded after a flush, and the parts not implemented yet."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import jobq
from jobq.job import JobStatus
from jobq.storage.base import Completion, NewJob, StorageError
from jobq.storage.redis import RedisStorage
from jobq.storage.redis.durability import SETTINGS, judge
from jobq.storage.redis.server import redacted
from tests.contract._backends import make_spec, open_storage, release_spec
from tests.contract._support import T0, token
from tests.helpers import run_children

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_spec(tmp_path: Any) -> Iterator[dict[str, Any]]:
    made = make_spec("redis", tmp_path)
    yield made
    release_spec(made)


@pytest.fixture
def storage(redis_spec: dict[str, Any]) -> Iterator[RedisStorage]:
    opened = open_storage(redis_spec)
    assert isinstance(opened, RedisStorage)
    try:
        yield opened
    finally:
        opened.close()


def test_four_threads_claim_each_job_once(storage: RedisStorage) -> None:
    ids = storage.enqueue_many([NewJob("t", "[]") for _ in range(400)], now=T0)
    claimed: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(slot: int) -> None:
        try:
            start.wait(timeout=10)
            while jobs := storage.claim(
                ["default"], owner=f"t{slot}", now=T0, lease_seconds=60, limit=3
            ):
                claimed[slot] += [job.id for job in jobs]
                storage.complete_many([Completion(job.id, token(job)) for job in jobs], now=T0)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(i for part in claimed for i in part) == ids
    assert sum(1 for part in claimed if part) >= 2, "no concurrency happened"
    assert storage.stats(now=T0).queues["default"].counts[JobStatus.COMPLETED] == 400


@pytest.mark.slow  # starts processes: the full suite runs it, not --fast
def test_four_processes_claim_each_job_once(
    redis_spec: dict[str, Any], storage: RedisStorage
) -> None:
    ids = storage.enqueue_many([NewJob("t", "[]") for _ in range(3000)], now=T0)
    results = run_children(
        [[json.dumps(redis_spec), "claim", f"proc-{n}", str(T0)] for n in range(4)]
    )
    claimed = [job_id for result in results for job_id in result["claimed"]]
    assert sorted(claimed) == ids  # each job exactly once, none lost
    assert sum(1 for result in results if result["claimed"]) >= 2, "no concurrency happened"
    stats = storage.stats(now=T0)
    assert stats.queues["default"].counts[JobStatus.COMPLETED] == 3000


def test_the_server_clock_is_used_by_default(redis_spec: dict[str, Any]) -> None:
    opened = RedisStorage(redis_spec["url"], prefix=redis_spec["prefix"], durability="ignore")
    with opened as storage:
        before = time.time()
        job = storage.enqueue(NewJob("t", "[]"), now=0.0).job  # `now` is ignored
        after = time.time()
        assert before - 5 < job.created_at < after + 5  # same host: the clocks agree
        assert job.run_at == job.created_at
        (claimed,) = storage.claim(["default"], owner="w", now=0.0, lease_seconds=30)
        assert claimed.started_at is not None
        assert claimed.lease_expires_at == pytest.approx(claimed.started_at + 30)
        assert storage.rescue_expired(now=1e12).total == 0  # the lease holds on the server


def test_prefixes_keep_two_storages_apart(redis_spec: dict[str, Any]) -> None:
    other = f"{redis_spec['prefix']}other:"
    with (
        RedisStorage(
            redis_spec["url"], prefix=redis_spec["prefix"], clock="caller", durability="ignore"
        ) as one,
        RedisStorage(redis_spec["url"], prefix=other, clock="caller", durability="ignore") as two,
    ):
        first = one.enqueue(NewJob("t", "[1]"), now=T0).job
        assert two.list_jobs() == []
        assert two.claim(["default"], owner="w", now=T0, lease_seconds=30) == []
        assert two.enqueue(NewJob("t", "[2]"), now=T0).job.id == first.id  # ids per prefix
        assert [job.payload for job in one.list_jobs()] == ["[1]"]
        assert two.stats(now=T0).queues["default"].counts[JobStatus.PENDING] == 1


def test_claim_order_is_exact_at_the_extremes(storage: RedisStorage) -> None:
    # The ready set orders members by bytes: check the encoding of negative and
    # extreme priorities, negative and nearly equal run times.
    tiny = 1e-9
    news = [
        NewJob("t", "[]", priority=-(2**31), run_at=-5.0),
        NewJob("t", "[]", priority=2**31 - 1, run_at=T0),
        NewJob("t", "[]", priority=-1, run_at=-0.5),
        NewJob("t", "[]", priority=-1, run_at=-1.5),
        NewJob("t", "[]", priority=0, run_at=T0 - 1 + tiny * 2**20),
        NewJob("t", "[]", priority=0, run_at=T0 - 1),
        NewJob("t", "[]", priority=0, run_at=T0 - 1),
        NewJob("t", "[]", priority=1, run_at=0.0),
    ]
    ids = storage.enqueue_many(news, now=T0)
    expected = sorted(
        zip(news, ids, strict=True), key=lambda p: (-p[0].priority, p[0].run_at, p[1])
    )
    jobs = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=10)
    assert [job.id for job in jobs] == [job_id for _, job_id in expected]
    assert [job.run_at for job in jobs] == [new.run_at for new, _ in expected]  # exact floats


def test_scripts_are_loaded_again_after_the_server_forgets_them(
    redis_spec: dict[str, Any], storage: RedisStorage
) -> None:
    import redis

    with redis.Redis.from_url(redis_spec["url"]) as client:
        client.script_flush()
    job = storage.enqueue(NewJob("t", "[]"), now=T0).job
    assert [j.id for j in storage.claim(["default"], owner="w", now=T0, lease_seconds=9)] == [
        job.id
    ]


def test_bad_options_and_unreachable_servers_are_refused(redis_spec: dict[str, Any]) -> None:
    url = redis_spec["url"]
    with pytest.raises(ValueError, match="clock must be 'database' or 'caller', got 'wall'"):
        RedisStorage(url, clock="wall")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prefix must be a non-empty str"):
        RedisStorage(url, prefix="")
    with pytest.raises(ValueError, match="max_connections must be at least 1, got 0"):
        RedisStorage(url, max_connections=0)
    with pytest.raises(ValueError, match="durability must be 'warn', 'refuse' or 'ignore'"):
        RedisStorage(url, durability="hope")  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="Redis error"):
        RedisStorage("redis://127.0.0.1:1/0", connect_timeout=2)
    assert redacted("redis://app:secret@cache:6379/2") == "redis://app:***@cache:6379/2"
    assert redacted("redis://cache:6379/2") == "redis://cache:6379/2"


def test_counters_of_ended_leases_are_not_left_behind(
    redis_spec: dict[str, Any], storage: RedisStorage
) -> None:
    import redis

    storage.enqueue_many([NewJob("t", "[]", limit_key=f"account-{n}") for n in range(50)], now=T0)
    jobs = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=50)
    prefix = redis_spec["prefix"]
    with redis.Redis.from_url(redis_spec["url"]) as client:
        assert client.hlen(f"{prefix}running") == 51  # the task, and each key's group
        assert client.scard(f"{prefix}owned:w") == 50
        storage.complete_many([Completion(job.id, token(job)) for job in jobs], now=T0)
        assert client.hlen(f"{prefix}running") == 0
        assert client.exists(f"{prefix}owned:w", f"{prefix}processing") == 0


def test_a_server_that_could_lose_jobs_is_warned_about_or_refused(
    redis_spec: dict[str, Any],
) -> None:
    url, prefix = redis_spec["url"], redis_spec["prefix"]
    # The throwaway test server runs without an append-only file.
    with pytest.warns(RuntimeWarning, match="may lose accepted jobs: appendonly is off"):
        RedisStorage(url, prefix=prefix).close()
    with pytest.raises(StorageError, match="appendonly yes and appendfsync always"):
        RedisStorage(url, prefix=prefix, durability="refuse")


def test_the_warning_points_at_the_line_that_opened_the_queue(redis_spec: dict[str, Any]) -> None:
    url = f"{redis_spec['url']}?prefix={redis_spec['prefix']}"
    with pytest.warns(RuntimeWarning, match="may lose accepted jobs") as caught:
        queue = jobq.DurableQueue(url)  # through open_storage and the queue's own frames
    queue.close()
    assert [warning.filename for warning in caught] == [__file__]


@pytest.mark.parametrize(
    ("settings", "durability", "outcome"),
    [
        ({"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction"},
         "refuse", None),
        ({"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"},
         "warn", "'everysec': a power loss or OS crash can lose the jobs accepted in the last"),
        ({"appendonly": "yes", "appendfsync": "no", "maxmemory-policy": "noeviction"},
         "warn", "the jobs the OS has not written to disk yet"),
        ({"appendonly": "no", "appendfsync": "always", "maxmemory-policy": "noeviction"},
         "ignore", None),
        ({}, "warn", "cannot be read"),
        ({"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "allkeys-lru"},
         "ignore", StorageError),
        ({"appendonly": "no", "appendfsync": "always", "maxmemory-policy": "noeviction"},
         "refuse", StorageError),
    ],
)  # fmt: skip
def test_the_server_settings_are_judged(
    settings: dict[str, str], durability: Any, outcome: Any
) -> None:
    assert set(SETTINGS) == {"appendonly", "appendfsync", "maxmemory-policy"}
    if outcome is StorageError:
        with pytest.raises(StorageError, match=r"maxmemory-policy|may lose accepted jobs"):
            judge(settings, durability)
    elif outcome is None:
        assert judge(settings, durability) is None
    else:
        assert outcome in (judge(settings, durability) or "")
