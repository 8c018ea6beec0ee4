"""The storage contract: stats kept as jobs change state, the oldest runnable age
for health checks, and the bound on paused queue names (run once per backend)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from jobq.job import JobStatus
from jobq.storage.base import MAX_PAUSED_QUEUES, Completion, NewJob, Storage, TooManyPausedQueues
from jobq.storage.bulk import JobFilter
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import BOOM, T0, token

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)


def recount(storage: Storage) -> dict[str, dict[JobStatus, int]]:
    """Jobs per queue and status, counted from the rows themselves."""
    counted: Counter[tuple[str, JobStatus]] = Counter()
    after = None
    while page := storage.list_jobs(after_id=after, limit=10_000):
        counted.update((job.queue, job.status) for job in page)
        after = page[-1].id
    queues: dict[str, dict[JobStatus, int]] = {}
    for (queue, status), jobs in counted.items():
        queues.setdefault(queue, dict.fromkeys(JobStatus, 0))[status] = jobs
    return queues


def test_stats_counts_equal_the_rows_through_every_kind_of_change(storage: Storage) -> None:
    shuffle = random.Random(7)
    now = T0
    queues = ["a", "b", "c"]
    for step in range(40):
        now += 1.0
        queue = shuffle.choice(queues)
        storage.enqueue_many(
            [NewJob("t", "[]", queue=q, max_attempts=2) for q in queues * 3], now=now
        )
        storage.enqueue_payloads(NewJob("t", "", queue=queue), ["[1]", "[2]"], now=now)
        storage.enqueue(NewJob("t", "[]", queue=queue, unique_key=f"k{step % 3}"), now=now)
        jobs = storage.claim(queues, owner="w", now=now, lease_seconds=5, limit=12)
        for n, job in enumerate(jobs):
            action = n % 6
            if action == 0:
                storage.complete(job.id, token(job), now=now)
            elif action == 1:
                storage.fail(job.id, token(job), BOOM, now=now, retry_at=now + 1)
            elif action == 2:
                storage.release(job.id, token(job), now=now)
            elif action == 3:
                storage.finish_cancelled(job.id, token(job), now=now)
            elif action == 4:
                storage.request_cancel(job.id, now=now)
            # 5: left to expire and be rescued
        storage.complete_many([Completion(j.id, token(j)) for j in jobs[6:9]], now=now)
        storage.rescue_expired(now=now)
        for job in storage.list_jobs(status=JobStatus.FAILED, limit=2):
            storage.retry(job.id, now=now)
        pending = storage.list_jobs(status=JobStatus.PENDING, limit=1)
        if pending:
            storage.request_cancel(pending[0].id, now=now)
        if step % 10 == 9:
            storage.purge(older_than=now - 3, statuses=[JobStatus.COMPLETED, JobStatus.CANCELLED])
        stats = storage.stats(now=now)
        assert {q: s.counts for q, s in stats.queues.items()} == recount(storage), step
    storage.purge(older_than=now + 1)
    for job in storage.list_jobs(limit=10_000):
        storage.request_cancel(job.id, now=now)
    storage.rescue_expired(now=now + 100)
    storage.purge(older_than=now + 101)
    assert storage.stats(now=now + 101).queues == {}  # a queue without jobs is not listed


def test_oldest_runnable_age_skips_paused_queues_and_future_jobs(storage: Storage) -> None:
    assert storage.oldest_runnable_age(now=T0) == 0.0
    storage.enqueue_many(
        [
            NewJob("t", "[]", queue="mail", run_at=T0 - 90),
            NewJob("t", "[]", run_at=T0 - 30),
            NewJob("t", "[]", run_at=T0 - 10),
            NewJob("t", "[]", queue="later", run_at=T0 + 50),
        ],
        now=T0 - 100,
    )
    assert storage.oldest_runnable_age(now=T0) == 90.0
    storage.pause("mail", now=T0)
    assert storage.oldest_runnable_age(now=T0) == 30.0
    stats = storage.stats(now=T0)
    unpaused = [s.oldest_runnable_age for q, s in stats.queues.items() if q not in stats.paused]
    assert max(unpaused) == 30.0
    storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=2)
    assert storage.oldest_runnable_age(now=T0) == 0.0  # only "later" is left, not yet due
    assert storage.oldest_runnable_age(now=T0 + 60) == 10.0


def test_paused_queue_names_are_bounded(storage: Storage) -> None:
    for n in range(MAX_PAUSED_QUEUES):
        storage.pause(f"q{n}", now=T0)
    storage.pause("q0", now=T0)  # already paused: still fine
    with pytest.raises(TooManyPausedQueues, match="1,000 queues are paused already") as info:
        storage.pause("one-more", now=T0)
    assert (info.value.queue, info.value.limit) == ("one-more", MAX_PAUSED_QUEUES)
    assert len(storage.paused_queues()) == MAX_PAUSED_QUEUES
    assert "one-more" not in storage.paused_queues()
    storage.resume("q1")
    storage.pause("one-more", now=T0)
    assert "one-more" in storage.paused_queues()


def test_stats_counts_equal_the_rows_after_bulk_actions(storage: Storage) -> None:
    queues = ["a", "b"]
    now = T0
    for step in range(6):
        now += 1.0
        storage.enqueue_many(
            [NewJob(f"t{n % 3}", "[]", queue=q, max_attempts=1) for q in queues for n in range(9)],
            now=now,
        )
        for job in storage.claim(queues, owner="w", now=now, lease_seconds=5, limit=7):
            storage.fail(job.id, token(job), BOOM, now=now)
        action = step % 3
        if action == 0:
            storage.retry_matching(JobFilter(name="t1"), now=now, batch_size=4)
        elif action == 1:
            storage.cancel_matching(JobFilter(queue="a"), now=now, batch_size=5)
        else:
            storage.delete_matching(
                JobFilter(statuses={"failed", "pending"}), now=now, batch_size=3
            )
        stats = storage.stats(now=now)
        assert {q: s.counts for q, s in stats.queues.items()} == recount(storage), step
