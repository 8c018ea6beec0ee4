"""Claims over a mixed backlog (several queues, priorities, run times, future
jobs, a paused queue, task limits) take jobs in exactly the order the contract
gives: priority (highest first), then run_at, then id, merged across the queues
asked for. PostgreSQL reads each queue on its own and merges; this checks the
merge against the order computed here. Runs once per backend."""

from __future__ import annotations

import random

import pytest

from jobq.storage.base import Job, NewJob, Storage, TaskLimit
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import T0

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)

QUEUES = ("a", "b", "c")


def _backlog(storage: Storage) -> list[Job]:
    """120 jobs over queues a, b, c and "other", some of them scheduled for later."""
    rng = random.Random(17)
    jobs = [
        NewJob(
            rng.choice(("send", "report")),
            "[]",
            queue=rng.choice((*QUEUES, "other")),
            priority=rng.choice((-1, 0, 0, 5)),
            run_at=T0 - rng.choice((1, 2, 3)) if rng.random() < 0.8 else T0 + 60,
        )
        for _ in range(120)
    ]
    storage.enqueue_many(jobs, now=T0 - 10)
    return list(storage.list_jobs(limit=1000))


def _expected(jobs: list[Job], queues: tuple[str, ...], now: float) -> list[int]:
    due = [j for j in jobs if j.queue in queues and j.run_at <= now]
    return [j.id for j in sorted(due, key=lambda j: (-j.priority, j.run_at, j.id))]


def _claim_all(
    storage: Storage, queues: tuple[str, ...], limit: int, **options: object
) -> list[int]:
    """Claim in chunks of ``limit`` until nothing is left; the ids in claim order."""
    taken: list[int] = []
    while chunk := storage.claim(
        list(queues),
        owner="w",
        now=T0,
        lease_seconds=600,
        limit=limit,
        **options,  # type: ignore[arg-type]
    ):
        taken.extend(job.id for job in chunk)
    return taken


def test_claims_in_chunks_follow_the_order_across_several_queues(storage: Storage) -> None:
    jobs = _backlog(storage)
    assert _claim_all(storage, QUEUES, limit=7) == _expected(jobs, QUEUES, T0)


def test_a_claim_of_one_queue_takes_only_its_jobs_in_order(storage: Storage) -> None:
    jobs = _backlog(storage)
    assert _claim_all(storage, ("b",), limit=5) == _expected(jobs, ("b",), T0)


def test_a_paused_queue_is_left_out_of_the_merge(storage: Storage) -> None:
    jobs = _backlog(storage)
    storage.pause("b", now=T0)
    assert _claim_all(storage, QUEUES, limit=9) == _expected(jobs, ("a", "c"), T0)
    storage.resume("b")
    assert _claim_all(storage, QUEUES, limit=9) == _expected(jobs, ("b",), T0)


def test_task_limits_keep_the_order_of_the_jobs_they_let_through(storage: Storage) -> None:
    jobs = _backlog(storage)
    limits = {"report": TaskLimit(rate=1000, per=60.0)}  # limited, never refused
    assert _claim_all(storage, QUEUES, limit=6, limits=limits, limited_at_most=6) == _expected(
        jobs, QUEUES, T0
    )


def test_a_task_at_its_limit_lets_the_others_through_in_order(storage: Storage) -> None:
    jobs = _backlog(storage)
    limits = {"report": TaskLimit(concurrency=1)}
    taken = _claim_all(storage, QUEUES, limit=4, limits=limits, limited_at_most=4)
    by_id = {job.id: job for job in jobs}
    expected = _expected(jobs, QUEUES, T0)
    first_report = next(i for i in expected if by_id[i].name == "report")
    assert taken == [i for i in expected if by_id[i].name == "send" or i == first_report]
