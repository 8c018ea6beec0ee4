"""The Redis backend's shortcuts on the workers' path give what the long way gives: an
enqueue answered with the new job's id and time only returns the job as stored, and
a claim that moves its jobs between sets one command per set leaves the
sets and counts as job-by-job moves would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from jobq.job import JobStatus
from jobq.storage.base import Completion, NewJob
from jobq.storage.redis import RedisStorage
from tests.contract._backends import make_spec, open_storage, release_spec
from tests.contract._support import T0, token

# The contract suite's storage fixture, on Redis only.
pytestmark = [pytest.mark.redis, pytest.mark.parametrize("spec", ["redis"], indirect=True)]


@pytest.mark.parametrize(
    "job",
    [
        NewJob("t", "[1]"),
        NewJob("t", '["é", {"a": null}]', queue="q2", priority=-3, max_attempts=7, run_at=T0 + 5),
        NewJob("t", "[]", unique_key="k", expires_at=T0 + 60.25, limit_key="acct 1"),
        NewJob("t", "[]", unique_key="k2", throttle=30.0),
    ],
)
def test_an_enqueued_job_is_returned_as_stored(storage: RedisStorage, job: NewJob) -> None:
    enqueued = storage.enqueue(job, now=T0)
    assert enqueued.created
    assert not enqueued.replaced
    assert enqueued.job == storage.get(enqueued.job.id)


def test_a_unique_key_holder_is_returned_whole(storage: RedisStorage) -> None:
    first = storage.enqueue(NewJob("t", "[1]", unique_key="k"), now=T0)
    (claimed,) = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=1)
    again = storage.enqueue(NewJob("t", "[2]", unique_key="k"), now=T0 + 1)
    assert not again.created
    assert again.job == claimed == storage.get(first.job.id)
    assert again.job.status is JobStatus.PROCESSING


def test_a_large_claim_over_two_queues_moves_every_job_once(storage: RedisStorage) -> None:
    n = 1_000  # the largest claim allowed
    storage.enqueue_many([NewJob("t", f"[{i}]", queue=f"q{i % 2}") for i in range(n)], now=T0)
    jobs = storage.claim(["q0", "q1"], owner="w", now=T0, lease_seconds=30, limit=n)
    assert sorted(job.id for job in jobs) == sorted({job.id for job in jobs})
    assert len(jobs) == n
    assert all(job.status is JobStatus.PROCESSING and job.attempts == 1 for job in jobs)
    stats = storage.stats(now=T0)
    for q in ("q0", "q1"):
        assert stats.queues[q].counts[JobStatus.PENDING] == 0
        assert stats.queues[q].counts[JobStatus.PROCESSING] == n // 2
    assert storage.list_jobs(status=JobStatus.PENDING) == []
    assert len(storage.list_jobs(status=JobStatus.PROCESSING, limit=n)) == n
    assert storage.claim(["q0", "q1"], owner="w", now=T0, lease_seconds=30, limit=10) == []
    # Every lease is known to the rescue: all come back once they expire.
    rescued = storage.rescue_expired(now=T0 + 31, limit=n)
    assert len(rescued.requeued) == n
    again = storage.claim(["q0", "q1"], owner="w", now=T0 + 31, lease_seconds=30, limit=n)
    assert {job.attempts for job in again} == {2}
    done = storage.complete_many([Completion(job.id, token(job)) for job in again], now=T0 + 32)
    assert all(done)
    assert storage.stats(now=T0 + 32).queues["q0"].counts[JobStatus.COMPLETED] == n // 2


def test_many_jobs_keep_their_text_exactly(storage: RedisStorage) -> None:
    # enqueue_many sends every field inside one JSON text: what JSON escapes, and
    # what it leaves as bytes, must come back as it went in.
    payloads = [
        json.dumps(['é ☃ \x00 \n "/\\ \U0001f600'], ensure_ascii=False),
        json.dumps(["\ud800"]),
        '["\\u0000 \\ud83d\\ude00"]',
        "[]",
    ]
    jobs = [
        NewJob("t/é", p, queue="q é", priority=-5, run_at=T0 + 0.1, limit_key="k é")
        for p in payloads
    ]
    ids = storage.enqueue_many(jobs, now=T0)
    for job_id, job in zip(ids, jobs, strict=True):
        stored = storage.get(job_id)
        assert stored is not None
        assert (stored.payload, stored.name, stored.queue) == (job.payload, job.name, job.queue)
        assert (stored.priority, stored.run_at, stored.limit_key) == (-5, T0 + 0.1, "k é")


def keys_under(prefix: str) -> dict[bytes, Any]:
    """Every key under ``prefix`` (without it) and its whole value."""
    import redis  # only where Redis is used: the 'redis' extra

    from tests.helpers import require_redis

    with redis.Redis.from_url(require_redis()) as client:  # bytes: order keys are binary
        found: dict[bytes, Any] = {}
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            kind = client.type(key).decode()
            if kind == "hash":
                value: Any = client.hgetall(key)
            elif kind == "zset":
                value = client.zrange(key, 0, -1, withscores=True)
            elif kind == "set":
                value = client.smembers(key)
            elif kind == "list":
                value = client.lrange(key, 0, -1)
            else:
                value = client.get(key)
            found[key[len(prefix.encode()) :]] = (kind, value)
        return found


@pytest.fixture
def other(tmp_path: Any) -> Iterator[RedisStorage]:
    spec = make_spec("redis", tmp_path)
    opened = open_storage(spec)
    assert isinstance(opened, RedisStorage)
    try:
        yield opened
    finally:
        opened.close()
        release_spec(spec)


def test_a_bulk_enqueue_leaves_the_keys_of_one_by_one_enqueues(
    storage: RedisStorage, other: RedisStorage
) -> None:
    # The bulk script writes the shared sets and counters once per call; the keys
    # must end as the shared insert() leaves them, job by job, every key and value.
    storage.enqueue(NewJob("t", "[0]", unique_key="held", on_duplicate="replace"), now=T0 - 1)
    other.enqueue(NewJob("t", "[0]", unique_key="held", on_duplicate="replace"), now=T0 - 1)
    jobs = [NewJob("t", f"[{i}]", queue=f"q{i % 3}", priority=i % 4 - 2) for i in range(40)]
    jobs += [
        NewJob("t", '["é ☃"]', run_at=T0 + 5, expires_at=T0 + 60.25, limit_key="acct 1"),
        NewJob("t", "[1]", unique_key="held", on_duplicate="replace", priority=3),
        NewJob("t", "[2]", unique_key="new"),
        NewJob("t", "[3]", unique_key="new"),
        NewJob("u", "[4]", unique_key="k", throttle=30.0),
        NewJob("u", "[5]", unique_key="k", throttle=30.0),
        NewJob("t", "[6]", queue="q1", run_at=T0 - 3, expires_at=T0 + 9),
        NewJob("t", "[7]", queue="q4", run_at=T0),
    ]
    ids = storage.enqueue_many(jobs, now=T0)
    one_by_one = [other.enqueue(job, now=T0).job.id for job in jobs]
    assert ids == one_by_one
    assert keys_under(storage.prefix) == keys_under(other.prefix)
    # One template, many payloads: the same again.
    template = NewJob("t", "", queue="q2", priority=1, run_at=T0 + 0.5, limit_key="k é")
    payloads = [f'["{i} é"]' for i in range(30)]
    ids = storage.enqueue_payloads(template, payloads, now=T0)
    one_by_one = [other.enqueue(template._replace(payload=p), now=T0).job.id for p in payloads]
    assert ids == one_by_one
    assert keys_under(storage.prefix) == keys_under(other.prefix)


def test_a_bulk_enqueue_of_more_jobs_than_one_call_takes_stores_them_all(
    storage: RedisStorage,
) -> None:
    n = 9_000  # more members than one ZADD call gets (unpack's limit)
    ids = storage.enqueue_many([NewJob("t", f"[{i}]") for i in range(n)], now=T0)
    assert ids == list(range(ids[0], ids[0] + n))
    assert storage.stats(now=T0).queues["default"].counts[JobStatus.PENDING] == n
    claimed = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=3)
    assert [job.id for job in claimed] == ids[:3]
