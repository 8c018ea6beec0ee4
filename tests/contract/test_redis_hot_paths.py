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

pytestmark = pytest.mark.redis


@pytest.fixture
def storage(tmp_path: Any) -> Iterator[RedisStorage]:
    spec = make_spec("redis", tmp_path)
    opened = open_storage(spec)
    assert isinstance(opened, RedisStorage)
    try:
        yield opened
    finally:
        opened.close()
        release_spec(spec)


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
