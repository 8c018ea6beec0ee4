"""The storage contract, dependencies: jobs that wait for others, chains, and
what a dependency's end does to its dependents, on every path that ends a job.

Every test runs once per backend (see conftest.py). Times are plain numbers
passed as ``now``: nothing here sleeps or reads a clock.
"""

from __future__ import annotations

import pytest

from jobq.errors import UnknownDependency
from jobq.job import JobError, JobStatus
from jobq.storage.base import Completion, NewJob, Storage
from jobq.storage.bulk import JobFilter
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import BOOM, T0, claim_one, token

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)

PENDING, COMPLETED = JobStatus.PENDING, JobStatus.COMPLETED
FAILED, CANCELLED = JobStatus.FAILED, JobStatus.CANCELLED


def _job(storage: Storage, name: str = "t", **fields: object) -> int:
    return storage.enqueue(NewJob(name, "[]", **fields), now=T0).job.id  # type: ignore[arg-type]


def _runs(storage: Storage, job_id: int, now: float = T0, result: str | None = None) -> None:
    """Claim ``job_id`` (it must be the one runnable job) and complete it."""
    job = claim_one(storage, now)
    assert job.id == job_id
    assert storage.complete(job.id, token(job), now=now, result=result)


def _status(storage: Storage, job_id: int) -> JobStatus:
    job = storage.get(job_id)
    assert job is not None
    return job.status


def test_a_dependent_waits_until_its_dependency_completes(storage: Storage) -> None:
    first = _job(storage)
    stored = storage.enqueue(NewJob("t", "[]", depends_on=(first,)), now=T0).job
    assert stored.status is PENDING
    assert stored.waiting
    assert stored.waiting_for == 1
    assert stored.run_at == T0  # the time it asked for, not the stored sentinel
    assert storage.dependencies_of(stored.id) == [first]
    assert storage.dependents_of(first) == [stored.id]
    queue = storage.stats(now=T0).queues["default"]
    assert (queue.counts[PENDING], queue.scheduled, queue.waiting) == (2, 0, 1)
    job = claim_one(storage, T0 + 1)
    assert job.id == first
    assert storage.claim(["default"], owner="w", now=T0 + 1000, lease_seconds=30) == []
    assert not storage.has_runnable(["default"], now=T0 + 1000)
    assert storage.complete(job.id, token(job), now=T0 + 2)
    after = storage.get(stored.id)
    assert after is not None
    assert not after.waiting
    assert after.waiting_for == 0
    assert after.run_at == T0 + 2  # runnable from the completion on
    assert storage.stats(now=T0 + 2).queues["default"].waiting == 0
    _runs(storage, stored.id, T0 + 2)


def test_the_last_of_several_dependencies_releases_it_and_a_later_run_at_holds(
    storage: Storage,
) -> None:
    a, b = _job(storage), _job(storage)
    later = storage.enqueue(NewJob("t", "[]", depends_on=(a, b, a), run_at=T0 + 50), now=T0).job.id
    assert storage.get(later).waiting_for == 2  # type: ignore[union-attr]
    _runs(storage, a, T0 + 1)
    assert storage.get(later).waiting_for == 1  # type: ignore[union-attr]
    _runs(storage, b, T0 + 2)
    assert storage.claim(["default"], owner="w", now=T0 + 49, lease_seconds=30) == []
    _runs(storage, later, T0 + 50)


def test_a_completed_dependency_counts_as_met_and_an_unknown_one_stores_nothing(
    storage: Storage,
) -> None:
    done = _job(storage)
    _runs(storage, done)
    ready = storage.enqueue(NewJob("t", "[]", depends_on=(done,)), now=T0 + 1).job
    assert not ready.waiting
    with pytest.raises(UnknownDependency) as raised:
        storage.enqueue_many(
            [NewJob("t", "[]"), NewJob("t", "[]", depends_on=(done, 999_999))], now=T0
        )
    assert raised.value.job_ids == [999_999]
    assert "999999" in str(raised.value)
    assert len(storage.list_jobs()) == 2  # nothing of the refused call
    with pytest.raises(ValueError, match="unique_key"):
        storage.enqueue(NewJob("t", "[]", depends_on=(done,), unique_key="k"), now=T0)
    with pytest.raises(ValueError, match=r"unique_key \(jobs\[0\]\)"):
        storage.enqueue_many(
            [NewJob("t", "[]", unique_key="k"), NewJob("t", "[]", depends_on=(done,))], now=T0
        )
    with pytest.raises(ValueError, match="unique_key"):
        storage.enqueue_chain([NewJob("t", "[]", unique_key="k")], now=T0)
    with pytest.raises(ValueError, match="on_dependency_failure"):
        storage.enqueue(NewJob("t", "[]", depends_on=(done,), on_dependency_failure="x"), now=T0)


def test_a_failed_dependency_cancels_by_default_fails_or_runs_by_policy(storage: Storage) -> None:
    first = _job(storage, max_attempts=1)
    cancel = storage.enqueue(NewJob("t", "[]", depends_on=(first,)), now=T0).job.id
    fail = storage.enqueue(
        NewJob("t", "[]", depends_on=(first,), on_dependency_failure="fail"), now=T0
    ).job.id
    run = storage.enqueue(
        NewJob("t", "[]", depends_on=(first,), on_dependency_failure="run"), now=T0
    ).job.id
    job = claim_one(storage, T0 + 1)
    assert storage.fail(job.id, token(job), BOOM, now=T0 + 2) is FAILED
    cancelled, failed = storage.get(cancel), storage.get(fail)
    assert cancelled is not None
    assert failed is not None
    assert cancelled.status is CANCELLED
    assert failed.status is FAILED
    assert cancelled.error == JobError("DependencyFailed", f"job {first} failed")
    assert cancelled.finished_at == T0 + 2
    assert cancelled.run_at == T0
    _runs(storage, run, T0 + 2)
    # Already failed at enqueue: the policy applies at once.
    late = storage.enqueue(NewJob("t", "[]", depends_on=(first,)), now=T0 + 3).job
    assert late.status is CANCELLED
    assert late.error is not None
    assert late.error.message == f"job {first} failed"
    counts = storage.stats(now=T0 + 3).queues["default"].counts
    assert counts[CANCELLED] == 2
    assert counts[PENDING] == 0


def test_a_retry_only_reruns_the_dependency_its_cancelled_dependents_stay(storage: Storage) -> None:
    first = _job(storage, max_attempts=1)
    dependent = storage.enqueue(NewJob("t", "[]", depends_on=(first,)), now=T0).job.id
    job = claim_one(storage, T0)
    storage.fail(job.id, token(job), BOOM, now=T0 + 1)
    assert storage.retry(first, now=T0 + 2) is not None
    _runs(storage, first, T0 + 2)
    assert _status(storage, dependent) is CANCELLED


def test_a_chain_runs_in_order_and_passes_results(storage: Storage) -> None:
    ids = storage.enqueue_chain(
        [
            NewJob("a", "[]"),
            NewJob("b", "[]", takes_result=True),
            NewJob("c", "[]"),
            NewJob("d", "[]", takes_result=True),
        ],
        now=T0,
    )
    assert storage.dependencies_of(ids[1]) == [ids[0]]
    assert storage.dependencies_of(ids[3]) == [ids[2]]
    for index, job_id in enumerate(ids):
        job = claim_one(storage, T0 + index)
        assert job.id == job_id
        if index in (1, 3):
            assert job.result_from == ids[index - 1]
            assert job.parent_result == f'"r{index - 1}"'
        else:
            assert job.result_from is None
            assert job.parent_result is None
        assert storage.claim(["default"], owner="w", now=T0 + index, lease_seconds=30) == []
        storage.complete(job.id, token(job), now=T0 + index, result=f'"r{index}"')
    assert storage.enqueue_chain([], now=T0) == []


def test_a_failed_step_cancels_the_rest_of_a_long_chain(storage: Storage) -> None:
    steps = 1200  # beyond SQLite's trigger depth of 1,000
    ids = storage.enqueue_chain([NewJob("t", "[]", max_attempts=1)] * steps, now=T0)
    job = claim_one(storage, T0)
    assert storage.fail(job.id, token(job), BOOM, now=T0 + 1) is FAILED
    counts = storage.stats(now=T0 + 1).queues["default"].counts
    assert (counts[FAILED], counts[CANCELLED], counts[PENDING]) == (1, steps - 1, 0)
    last = storage.get(ids[-1])
    assert last is not None
    assert last.error is not None
    assert last.error.message == f"job {ids[-2]} cancelled"


def test_diamond_dependencies_run_the_join_once_after_both(storage: Storage) -> None:
    a = _job(storage)
    b = storage.enqueue(NewJob("t", "[]", depends_on=(a,)), now=T0).job.id
    c = storage.enqueue(NewJob("t", "[]", depends_on=(a,)), now=T0).job.id
    d = storage.enqueue(NewJob("t", "[]", depends_on=(b, c)), now=T0).job.id
    _runs(storage, a, T0 + 1)
    both = storage.claim(["default"], owner="w", now=T0 + 2, lease_seconds=30, limit=10)
    assert sorted(job.id for job in both) == [b, c]
    assert storage.complete_many([Completion(j.id, token(j)) for j in both], now=T0 + 3) == [
        True,
        True,
    ]
    _runs(storage, d, T0 + 3)


@pytest.mark.parametrize("how", ["cancel", "expire", "rescue", "bulk-cancel", "delete"])
def test_every_path_that_ends_a_dependency_ends_its_dependents(storage: Storage, how: str) -> None:
    expires_at = T0 + 10 if how == "expire" else None
    first = _job(storage, "first", max_attempts=1, expires_at=expires_at)
    dependent = storage.enqueue(NewJob("t", "[]", depends_on=(first,)), now=T0).job.id
    grandchild = storage.enqueue(NewJob("t", "[]", depends_on=(dependent,)), now=T0).job.id
    if how == "cancel":
        storage.request_cancel(first, now=T0 + 1)
    elif how == "expire":
        assert storage.expire_jobs(now=T0 + 11) == [first]
    elif how == "rescue":
        claim_one(storage, T0, lease=5)
        assert storage.rescue_expired(now=T0 + 6).failed == (first,)
    elif how == "bulk-cancel":
        storage.cancel_matching(JobFilter(statuses={"pending"}), now=T0 + 1)
    else:
        storage.delete_matching(JobFilter(name="first"), now=T0 + 1)
    assert _status(storage, dependent) is CANCELLED
    assert _status(storage, grandchild) is CANCELLED
    assert storage.claim(["default"], owner="w", now=T0 + 100, lease_seconds=30) == []
    assert storage.stats(now=T0 + 100).queues["default"].counts[PENDING] == 0


def test_a_cancel_of_a_processing_dependency_ends_dependents_when_the_worker_stops(
    storage: Storage,
) -> None:
    first = _job(storage)
    dependent = storage.enqueue(NewJob("t", "[]", depends_on=(first,)), now=T0).job.id
    job = claim_one(storage, T0)
    storage.request_cancel(first, now=T0 + 1)
    assert _status(storage, dependent) is PENDING  # still waiting: the job may yet finish
    assert storage.finish_cancelled(job.id, token(job), now=T0 + 2)
    assert _status(storage, dependent) is CANCELLED


def test_a_waiting_job_can_be_cancelled_and_its_dependency_then_completes(storage: Storage) -> None:
    first = _job(storage)
    dependent = storage.enqueue(NewJob("t", "[]", depends_on=(first,)), now=T0).job.id
    cancelled = storage.request_cancel(dependent, now=T0 + 1)
    assert cancelled is not None
    assert cancelled.status is CANCELLED
    assert not cancelled.waiting
    _runs(storage, first, T0 + 2)
    assert _status(storage, dependent) is CANCELLED
    assert storage.claim(["default"], owner="w", now=T0 + 100, lease_seconds=30) == []


def test_dependencies_of_unknown_or_bad_ids_are_empty(storage: Storage) -> None:
    assert storage.dependencies_of(123) == []
    assert storage.dependents_of(123) == []
    assert storage.dependencies_of(-1) == []
    assert storage.dependents_of(0) == []


@pytest.mark.slow  # starts processes: the full suite runs it, not --fast
def test_four_processes_completing_the_dependencies_at_once_release_each_dependent_once(
    spec: dict[str, object], storage: Storage
) -> None:
    import json

    from tests.helpers import run_children

    dependents = 60
    deps = [storage.enqueue_many([NewJob("dep", "[]")] * dependents, now=T0) for _ in range(4)]
    joins = storage.enqueue_many(
        [NewJob("join", "[]", depends_on=tuple(d[i] for d in deps)) for i in range(dependents)],
        now=T0,
    )
    held = storage.claim(["default"], owner="w", now=T0, lease_seconds=600, limit=1000)
    assert len(held) == 4 * dependents  # the joins wait
    tokens = {job.id: token(job) for job in held}
    results = run_children(
        [
            [json.dumps(spec), "complete", json.dumps([[i, tokens[i]] for i in reversed(d)])]
            for d in deps
        ],
        timeout=60,
    )
    assert [result["completed"] for result in results] == [dependents] * 4
    released = storage.claim(["default"], owner="w", now=T0 + 2, lease_seconds=60, limit=1000)
    assert sorted(job.id for job in released) == joins  # each once, none left waiting
    assert storage.stats(now=T0 + 2).queues["default"].waiting == 0


def test_a_dependency_retried_after_it_failed_is_not_counted_twice(storage: Storage) -> None:
    first, second = _job(storage, max_attempts=1), _job(storage)
    runs = storage.enqueue(
        NewJob("t", "[]", depends_on=(first, second), on_dependency_failure="run"), now=T0
    ).job.id
    job = claim_one(storage, T0)
    assert job.id == first
    storage.fail(job.id, token(job), BOOM, now=T0 + 1)
    assert storage.get(runs).waiting_for == 1  # type: ignore[union-attr]
    storage.retry(first, now=T0 + 2)
    both = storage.claim(["default"], owner="w", now=T0 + 2, lease_seconds=30, limit=10)
    assert sorted(j.id for j in both) == [first, second]
    retried = next(j for j in both if j.id == first)
    assert storage.complete(retried.id, token(retried), now=T0 + 3)
    assert storage.get(runs).waiting_for == 1  # type: ignore[union-attr]  # second still runs
    assert storage.claim(["default"], owner="w", now=T0 + 3, lease_seconds=30) == []
    other = next(j for j in both if j.id == second)
    assert storage.complete(other.id, token(other), now=T0 + 4)
    _runs(storage, runs, T0 + 4)
