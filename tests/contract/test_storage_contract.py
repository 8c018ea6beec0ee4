"""The storage contract, written against the Storage protocol only.

Every test runs once per backend (see conftest.py). Times are plain numbers
passed as ``now``: nothing here sleeps or reads a clock.
"""

from __future__ import annotations

import json

import pytest

from jobq.job import JobError, JobStatus
from jobq.storage.base import Completion, NewJob, Storage
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import BOOM, T0, claim_one, token

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)

# -- enqueue ---------------------------------------------------------------------------


def test_enqueue_stores_every_field(storage: Storage) -> None:
    payload = json.dumps({"args": [1, "x"], "kwargs": {"k": None}})
    new = NewJob("send_mail", payload, queue="mail", priority=5, max_attempts=4, run_at=T0 + 10)
    enqueued = storage.enqueue(new, now=T0)
    job = enqueued.job
    assert enqueued.created
    assert (job.name, job.queue, job.payload, job.priority, job.max_attempts) == (
        "send_mail",
        "mail",
        payload,
        5,
        4,
    )
    assert job.decoded_payload() == {"args": [1, "x"], "kwargs": {"k": None}}
    assert (job.status, job.attempts, job.run_at) == (JobStatus.PENDING, 0, T0 + 10)
    assert (job.created_at, job.updated_at, job.started_at, job.finished_at) == (T0, T0, None, None)
    assert job.lease_token is None
    assert job.error is None
    assert not job.cancel_requested
    assert storage.get(job.id) == job


def test_run_at_defaults_to_now_and_ids_increase(storage: Storage) -> None:
    first = storage.enqueue(NewJob("t", "1"), now=T0).job
    second = storage.enqueue(NewJob("t", "2"), now=T0 + 1).job
    assert first.run_at == T0
    assert second.run_at == T0 + 1
    assert second.id > first.id


def test_enqueue_many_returns_ids_in_order_in_one_transaction(storage: Storage) -> None:
    jobs = [NewJob("t", json.dumps(i), priority=i % 3) for i in range(3000)]
    ids = storage.enqueue_many(jobs, now=T0)
    assert len(ids) == len(set(ids)) == 3000
    for index in (0, 1234, 2999):
        stored = storage.get(ids[index])
        assert stored is not None
        assert stored.decoded_payload() == index
    assert storage.enqueue_many([], now=T0) == []


def test_enqueue_many_rejects_bad_entry_before_writing(storage: Storage) -> None:
    bad = [NewJob("t", "1"), NewJob("t", {"not": "encoded"})]  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"payload must be JSON text.*jobs\[1\]"):
        storage.enqueue_many(bad, now=T0)
    assert storage.list_jobs() == []


@pytest.mark.parametrize(
    ("new", "error", "match"),
    [
        (NewJob("t", b"[]"), TypeError, "payload must be JSON text"),  # type: ignore[arg-type]
        (NewJob("", "[]"), ValueError, "name must be a non-empty str"),
        (NewJob("t", "[]", queue=""), ValueError, "queue must be a non-empty str"),
        (NewJob("t", "[]", max_attempts=0), ValueError, "max_attempts must be .* got 0"),
        (NewJob("t", "[]", priority=1.5), ValueError, "priority must be an integer"),  # type: ignore[arg-type]
        (NewJob("t", "[]", run_at=float("nan")), ValueError, "run_at must be finite"),
        (NewJob("t\x00x", "[]"), ValueError, "name must be a non-empty str without NUL"),
        (NewJob("t", "[]", queue="q\x00"), ValueError, "queue must be .* without NUL"),
        (NewJob("t", '["\x00"]'), ValueError, "payload must not contain a NUL"),
        (NewJob("t", "[]", unique_key="k\x00"), ValueError, "unique_key must not contain"),
    ],
)
def test_enqueue_rejects_bad_fields(
    storage: Storage, new: NewJob, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        storage.enqueue(new, now=T0)
    assert storage.list_jobs() == []


def test_queue_names_with_nul_are_refused_everywhere(storage: Storage) -> None:
    for call in (
        lambda: storage.claim(["a\x00"], owner="w", now=T0, lease_seconds=30),
        lambda: storage.pause("a\x00", now=T0),
        lambda: storage.resume("a\x00"),
    ):
        with pytest.raises(ValueError, match="without NUL"):
            call()


def test_unique_key_returns_live_job(storage: Storage) -> None:
    first = storage.enqueue(NewJob("t", "1", unique_key="report:7"), now=T0)
    again = storage.enqueue(NewJob("t", "2", unique_key="report:7"), now=T0 + 1)
    assert first.created
    assert not again.created
    assert again.job == first.job
    claimed = claim_one(storage, T0 + 2)
    assert claimed.id == first.job.id
    # Still live while processing.
    assert not storage.enqueue(NewJob("t", "3", unique_key="report:7"), now=T0 + 3).created
    assert storage.complete(claimed.id, token(claimed), now=T0 + 4)
    # Finished: the key is free again.
    after = storage.enqueue(NewJob("t", "4", unique_key="report:7"), now=T0 + 5)
    assert after.created
    assert after.job.id != first.job.id


def test_unique_key_in_bulk_and_within_one_batch(storage: Storage) -> None:
    existing = storage.enqueue(NewJob("t", "0", unique_key="a"), now=T0).job
    ids = storage.enqueue_many(
        [
            NewJob("t", "1"),
            NewJob("t", "2", unique_key="a"),
            NewJob("t", "3", unique_key="b"),
            NewJob("t", "4", unique_key="b"),
            NewJob("t", "5"),
        ],
        now=T0,
    )
    assert ids[1] == existing.id
    assert ids[2] == ids[3] != existing.id
    assert len({ids[0], ids[2], ids[4], existing.id}) == 4
    assert len(storage.list_jobs()) == 4


# -- claim -----------------------------------------------------------------------------


def test_claim_order_priority_then_run_at_then_id(storage: Storage) -> None:
    ids = storage.enqueue_many(
        [
            NewJob("t", "0", priority=0, run_at=T0 - 50),
            NewJob("t", "1", priority=9, run_at=T0 - 1),
            NewJob("t", "2", priority=9, run_at=T0 - 5),
            NewJob("t", "3", priority=0, run_at=T0 - 50),
            NewJob("t", "4", priority=-3, run_at=T0 - 99),
        ],
        now=T0 - 100,
    )
    order = [
        job.id for job in storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=10)
    ]
    assert order == [ids[2], ids[1], ids[0], ids[3], ids[4]]


def test_claim_sets_the_lease_and_counts_the_attempt(storage: Storage) -> None:
    job_id = storage.enqueue(NewJob("t", "[]"), now=T0).job.id
    job = claim_one(storage, T0 + 1, lease=45, owner="host:1:thread")
    assert (job.id, job.status, job.attempts) == (job_id, JobStatus.PROCESSING, 1)
    assert (job.lease_owner, job.lease_expires_at, job.started_at) == (
        "host:1:thread",
        T0 + 46,
        T0 + 1,
    )
    assert job.lease_token
    assert len(job.lease_token) >= 16
    assert storage.get(job_id) == job  # what claim returned is what was committed
    assert storage.claim(["default"], owner="w2", now=T0 + 2, lease_seconds=30) == []


def test_claim_skips_future_jobs_other_queues_and_respects_limit(storage: Storage) -> None:
    storage.enqueue(NewJob("t", "[]", run_at=T0 + 60), now=T0)
    storage.enqueue(NewJob("t", "[]", queue="other"), now=T0)
    ids = storage.enqueue_many([NewJob("t", "[]") for _ in range(5)], now=T0)
    first = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=3)
    assert [job.id for job in first] == ids[:3]
    rest = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=3)
    assert [job.id for job in rest] == ids[3:]
    assert storage.claim(["default"], owner="w", now=T0, lease_seconds=30) == []
    later = storage.claim(["default"], owner="w", now=T0 + 60, lease_seconds=30)
    assert [job.run_at for job in later] == [T0 + 60]


def test_claim_across_queues_merges_by_priority(storage: Storage) -> None:
    low = storage.enqueue(NewJob("t", "[]", queue="a", priority=1), now=T0).job.id
    high = storage.enqueue(NewJob("t", "[]", queue="b", priority=5), now=T0).job.id
    mid = storage.enqueue(NewJob("t", "[]", queue="a", priority=3), now=T0).job.id
    storage.enqueue(NewJob("t", "[]", queue="c", priority=99), now=T0)
    jobs = storage.claim(["a", "b"], owner="w", now=T0, lease_seconds=30, limit=2)
    assert [job.id for job in jobs] == [high, mid]
    assert [
        job.id for job in storage.claim(("b", "a"), owner="w", now=T0, lease_seconds=30, limit=5)
    ] == [low]
    assert storage.claim([], owner="w", now=T0, lease_seconds=30) == []


def test_claim_across_queues_takes_the_best_of_all_in_claim_order(storage: Storage) -> None:
    def put(queue: str, run_at: float, priority: int = 0) -> int:
        new = NewJob("t", "[]", queue=queue, priority=priority, run_at=run_at)
        return storage.enqueue(new, now=T0 - 10).job.id

    a3, a1, a2 = put("a", T0 - 3), put("a", T0 - 1), put("a", T0 - 2)
    b2, b0 = put("b", T0 - 2.5), put("b", T0 - 0.5)
    c = put("c", T0, priority=1)
    put("c", T0 + 5, priority=9)  # not due
    jobs = storage.claim(["a", "b", "c"], owner="w", now=T0, lease_seconds=30, limit=4)
    assert [job.id for job in jobs] == [c, a3, b2, a2]
    assert {(job.status, job.attempts, job.lease_owner) for job in jobs} == {
        (JobStatus.PROCESSING, 1, "w")
    }
    assert all(job.started_at == T0 and job.lease_expires_at == T0 + 30 for job in jobs)
    assert len({job.lease_token for job in jobs}) == 4
    rest = storage.claim(["c", "b", "a"], owner="w", now=T0, lease_seconds=30, limit=9)
    assert [job.id for job in rest] == [a1, b0]


def test_claim_rejects_bad_arguments(storage: Storage) -> None:
    with pytest.raises(TypeError, match="not a str"):
        storage.claim("default", owner="w", now=T0, lease_seconds=30)
    with pytest.raises(ValueError, match=r"lease_seconds must be .* got 0"):
        storage.claim(["default"], owner="w", now=T0, lease_seconds=0)
    with pytest.raises(ValueError, match=r"limit must be .* got 0"):
        storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=0)
    with pytest.raises(ValueError, match=r"limit must be .* got 1001"):
        storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=1001)


def test_paused_queue_is_not_claimed_until_resumed(storage: Storage) -> None:
    storage.enqueue(NewJob("t", "[]", queue="mail"), now=T0)
    other = storage.enqueue(NewJob("t", "[]", queue="web"), now=T0).job.id
    storage.pause("mail", now=T0)
    storage.pause("mail", now=T0)  # idempotent
    assert storage.paused_queues() == frozenset({"mail"})
    assert storage.claim(["mail"], owner="w", now=T0, lease_seconds=30) == []
    both = storage.claim(["mail", "web"], owner="w", now=T0, lease_seconds=30, limit=5)
    assert [job.id for job in both] == [other]
    storage.resume("mail")
    assert storage.paused_queues() == frozenset()
    assert len(storage.claim(["mail"], owner="w", now=T0, lease_seconds=30)) == 1


# -- leases: renew, progress, complete, fail ------------------------------------------------


def test_complete_is_fenced_by_the_lease_token(storage: Storage) -> None:
    job_id = storage.enqueue(NewJob("t", "[]", max_attempts=3), now=T0).job.id
    stale = claim_one(storage, T0, lease=10, owner="dead")
    assert storage.rescue_expired(now=T0 + 10).requeued == (job_id,)
    fresh = claim_one(storage, T0 + 11, owner="alive")
    assert fresh.lease_token != stale.lease_token
    assert fresh.attempts == 2
    # The stale worker wakes up: every call it makes is refused and changes nothing.
    assert not storage.complete(job_id, token(stale), now=T0 + 12, result='"stale"')
    assert storage.fail(job_id, token(stale), BOOM, now=T0 + 12) is None
    assert not storage.set_progress(job_id, token(stale), "0.5", now=T0 + 12)
    assert not storage.finish_cancelled(job_id, token(stale), now=T0 + 12)
    assert storage.renew([(job_id, token(stale))], now=T0 + 12, lease_seconds=30).lost == {job_id}
    assert storage.get(job_id) == fresh
    assert storage.complete(job_id, token(fresh), now=T0 + 13, result='{"ok": true}')
    done = storage.get(job_id)
    assert done is not None
    assert (done.status, done.finished_at, done.decoded_result()) == (
        JobStatus.COMPLETED,
        T0 + 13,
        {"ok": True},
    )
    assert done.lease_expires_at is None
    assert not storage.complete(job_id, token(fresh), now=T0 + 14)  # only once


def test_complete_rejects_unencoded_result(storage: Storage) -> None:
    storage.enqueue(NewJob("t", "[]"), now=T0)
    job = claim_one(storage)
    with pytest.raises(TypeError, match="result must be JSON text"):
        storage.complete(job.id, token(job), now=T0, result={"x": 1})  # type: ignore[arg-type]
    assert storage.get(job.id) == job


def test_complete_many_reports_each_entry(storage: Storage) -> None:
    storage.enqueue_many([NewJob("t", "[]") for _ in range(4)], now=T0)
    a, b, c, d = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=4)
    done = storage.complete_many(
        [
            Completion(a.id, token(a), "1"),
            Completion(b.id, "not-the-token"),
            Completion(c.id, token(c)),
            Completion(c.id, token(c)),
        ],
        now=T0 + 1,
    )
    assert done == [True, False, True, False]
    statuses = {job.id: job.status for job in storage.list_jobs()}
    assert statuses == {
        a.id: JobStatus.COMPLETED,
        b.id: JobStatus.PROCESSING,
        c.id: JobStatus.COMPLETED,
        d.id: JobStatus.PROCESSING,
    }
    assert storage.complete_many([Completion(d.id, token(d))], now=T0 + 1) == [True]
    assert storage.complete_many([], now=T0) == []


def test_renew_extends_leases_and_reports_lost_and_cancelled(storage: Storage) -> None:
    storage.enqueue_many([NewJob("t", "[]") for _ in range(3)], now=T0)
    a, b, c = storage.claim(["default"], owner="w", now=T0, lease_seconds=10, limit=3)
    storage.request_cancel(b.id, now=T0 + 1)
    result = storage.renew(
        [(a.id, token(a)), (b.id, token(b)), (c.id, "wrong"), (999, "x")],
        now=T0 + 5,
        lease_seconds=10,
    )
    assert result.renewed == {a.id, b.id}
    assert result.cancel_requested == {b.id}
    assert result.lost == {c.id, 999}
    # a's lease now runs to T0 + 15, c's still lapses at T0 + 10.
    rescued = storage.rescue_expired(now=T0 + 12)
    assert rescued.requeued == (c.id,)
    renewed = storage.get(a.id)
    assert renewed is not None
    assert renewed.lease_expires_at == T0 + 15


def test_progress_is_stored_for_the_holder(storage: Storage) -> None:
    storage.enqueue(NewJob("t", "[]"), now=T0)
    job = claim_one(storage)
    assert storage.set_progress(job.id, token(job), '{"done": 3, "of": 10}', now=T0 + 1)
    stored = storage.get(job.id)
    assert stored is not None
    assert stored.decoded_progress() == {"done": 3, "of": 10}
    assert stored.updated_at == T0 + 1


def test_fail_reschedules_while_attempts_remain_then_fails(storage: Storage) -> None:
    job_id = storage.enqueue(NewJob("t", "[]", max_attempts=2), now=T0).job.id
    first = claim_one(storage, T0)
    assert storage.fail(job_id, token(first), BOOM, now=T0 + 1, retry_at=T0 + 30) == (
        JobStatus.PENDING
    )
    waiting = storage.get(job_id)
    assert waiting is not None
    assert (waiting.status, waiting.run_at, waiting.error, waiting.finished_at) == (
        JobStatus.PENDING,
        T0 + 30,
        BOOM,
        None,
    )
    assert storage.claim(["default"], owner="w", now=T0 + 29, lease_seconds=30) == []
    second = claim_one(storage, T0 + 30)
    assert second.attempts == 2
    other = JobError("KeyError", "'x'", None)
    assert storage.fail(job_id, token(second), other, now=T0 + 31, retry_at=T0 + 60) == (
        JobStatus.FAILED
    )
    failed = storage.get(job_id)
    assert failed is not None
    assert (failed.status, failed.error, failed.finished_at) == (JobStatus.FAILED, other, T0 + 31)


def test_fail_without_retry_at_ends_failed_at_once(storage: Storage) -> None:
    job_id = storage.enqueue(NewJob("t", "[]", max_attempts=5), now=T0).job.id
    job = claim_one(storage)
    assert storage.fail(job_id, token(job), BOOM, now=T0 + 1) == JobStatus.FAILED
    assert storage.claim(["default"], owner="w", now=T0 + 99, lease_seconds=30) == []


def test_release_hands_the_job_back_without_counting_the_attempt(storage: Storage) -> None:
    job_id = storage.enqueue(NewJob("t", "[]", max_attempts=1), now=T0).job.id
    job = claim_one(storage)
    assert storage.release(job_id, "wrong", now=T0 + 1) is None
    assert storage.release(job_id, token(job), now=T0 + 1, run_at=T0 + 30) == JobStatus.PENDING
    back = storage.get(job_id)
    assert back is not None
    assert (back.status, back.attempts, back.run_at, back.lease_expires_at) == (
        JobStatus.PENDING,
        0,
        T0 + 30,
        None,
    )
    assert storage.release(job_id, token(job), now=T0 + 2) is None  # not held any more
    again = claim_one(storage, T0 + 30)
    assert again.attempts == 1  # max_attempts=1 still allows this attempt
    storage.request_cancel(job_id, now=T0 + 31)
    assert storage.release(job_id, token(again), now=T0 + 32) == JobStatus.CANCELLED


def test_has_runnable_matches_what_claim_would_find(storage: Storage) -> None:
    assert not storage.has_runnable(["default"], now=T0)
    storage.enqueue(NewJob("t", "[]", run_at=T0 + 10), now=T0)
    storage.enqueue(NewJob("t", "[]", queue="mail"), now=T0)
    assert not storage.has_runnable(["default"], now=T0 + 9)
    assert storage.has_runnable(["default"], now=T0 + 10)
    assert storage.has_runnable(["default", "mail"], now=T0)
    storage.pause("mail", now=T0)
    assert not storage.has_runnable(["mail"], now=T0)
    assert not storage.has_runnable([], now=T0)


# -- rescue ------------------------------------------------------------------------------


def test_rescue_requeues_then_fails_when_attempts_are_used(storage: Storage) -> None:
    job_id = storage.enqueue(NewJob("t", "[]", max_attempts=2), now=T0).job.id
    claim_one(storage, T0, lease=10, owner="worker-a")
    assert storage.rescue_expired(now=T0 + 9.9).total == 0  # lease still holds
    rescued = storage.rescue_expired(now=T0 + 10)
    assert (rescued.requeued, rescued.failed) == ((job_id,), ())
    requeued = storage.get(job_id)
    assert requeued is not None
    assert requeued.error is not None
    assert (requeued.status, requeued.attempts, requeued.run_at) == (JobStatus.PENDING, 1, T0)
    assert requeued.error.type == "LeaseExpired"
    assert "lease expired (worker died?)" in requeued.error.message
    assert "worker-a" in requeued.error.message
    claim_one(storage, T0 + 20, lease=10)
    rescued = storage.rescue_expired(now=T0 + 31)
    assert (rescued.requeued, rescued.failed) == ((), (job_id,))
    failed = storage.get(job_id)
    assert failed is not None
    assert failed.error is not None
    assert (failed.status, failed.attempts, failed.finished_at) == (JobStatus.FAILED, 2, T0 + 31)
    assert "lease expired (worker died?)" in failed.error.message


def test_rescue_works_in_bounded_batches(storage: Storage) -> None:
    storage.enqueue_many([NewJob("t", "[]") for _ in range(5)], now=T0)
    storage.claim(["default"], owner="w", now=T0, lease_seconds=1, limit=5)
    assert storage.rescue_expired(now=T0 + 2, limit=3).total == 3
    assert storage.rescue_expired(now=T0 + 2, limit=3).total == 2
    assert storage.rescue_expired(now=T0 + 2, limit=3).total == 0
