"""The storage contract, job history and throughput: the attempts that did not
complete, kept by the transaction that ended them, and per-minute counters of
jobs that ended completed or failed.

Every test runs once per backend (see conftest.py). Times are plain numbers
passed as ``now``: nothing here sleeps or reads a clock.
"""

from __future__ import annotations

import pytest

from jobq.job import JobError, JobStatus
from jobq.storage.base import Completion, NewJob, Storage
from jobq.storage.history import AttemptRecord, JobHistory, ThroughputPoint
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import BOOM, T0, claim_one, token

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)

MINUTE = 60.0
T = 1_000_020.0  # the start of a minute (T0 is 1,000,000: 20 s into one)


def _history(storage: Storage) -> JobHistory:
    assert isinstance(storage, JobHistory)
    return storage


def _job(storage: Storage, queue: str = "default", attempts: int = 3) -> int:
    new = NewJob("t", "[]", queue=queue, max_attempts=attempts)
    return storage.enqueue(new, now=T0).job.id


def test_each_failed_attempt_is_kept_and_a_completed_one_is_not(storage: Storage) -> None:
    job_id = _job(storage)
    first = claim_one(storage, T0 + 1, owner="web1:40:pool")
    assert storage.fail(job_id, token(first), BOOM, now=T0 + 2, retry_at=T0 + 5) is (
        JobStatus.PENDING
    )
    second = claim_one(storage, T0 + 5, owner="web2:41:pool")
    other = JobError("KeyError", "'x'", None)
    storage.fail(job_id, token(second), other, now=T0 + 7, retry_at=T0 + 9)
    third = claim_one(storage, T0 + 9)
    assert storage.complete(job_id, token(third), now=T0 + 10)
    assert _history(storage).job_attempts(job_id) == [
        AttemptRecord(job_id, 1, "web1:40:pool", T0 + 1, T0 + 2, "failed", BOOM),
        AttemptRecord(job_id, 2, "web2:41:pool", T0 + 5, T0 + 7, "failed", other),
    ]


def test_a_lapsed_lease_and_a_cancel_leave_their_attempt(storage: Storage) -> None:
    expired, cancelled = _job(storage, attempts=1), _job(storage)
    claim_one(storage, T0 + 1, owner="gone:7:pool")
    running = claim_one(storage, T0 + 2, owner="w:8:pool", lease=300)
    assert storage.rescue_expired(now=T0 + 40).failed == (expired,)
    storage.request_cancel(cancelled, now=T0 + 50)
    assert storage.finish_cancelled(cancelled, token(running), now=T0 + 51)
    (lapsed,) = _history(storage).job_attempts(expired)
    assert (lapsed.attempt, lapsed.lease_owner, lapsed.started_at, lapsed.ended_at) == (
        1,
        "gone:7:pool",
        T0 + 1,
        T0 + 40,
    )
    assert lapsed.outcome == "lease_expired"
    assert lapsed.error is not None
    assert lapsed.error.type == "LeaseExpired"
    assert "gone:7:pool" in lapsed.error.message
    assert _history(storage).job_attempts(cancelled) == [
        AttemptRecord(cancelled, 1, "w:8:pool", T0 + 2, T0 + 51, "cancelled", None)
    ]


def test_a_lost_lease_writes_no_attempt(storage: Storage) -> None:
    job_id = _job(storage)
    claim_one(storage, T0 + 1)
    assert storage.fail(job_id, "not-the-token", BOOM, now=T0 + 2) is None
    assert not storage.finish_cancelled(job_id, "not-the-token", now=T0 + 2)
    assert _history(storage).job_attempts(job_id) == []
    assert _history(storage).job_attempts(10**9) == []
    assert _history(storage).job_attempts(-1) == []


def test_attempts_go_with_the_purged_job(storage: Storage) -> None:
    gone, kept = _job(storage, attempts=1), _job(storage, attempts=1)
    storage.fail(gone, token(claim_one(storage, T0 + 1)), BOOM, now=T0 + 2)
    storage.fail(kept, token(claim_one(storage, T0 + 1)), BOOM, now=T0 + 9)
    assert storage.purge(older_than=T0 + 5, statuses=[JobStatus.FAILED]) == 1
    assert _history(storage).job_attempts(gone) == []
    assert [a.ended_at for a in _history(storage).job_attempts(kept)] == [T0 + 9]


def test_throughput_counts_jobs_as_they_end_per_minute_and_queue(storage: Storage) -> None:
    done = [_job(storage, "mail") for _ in range(3)] + [_job(storage, "pdf")]
    dead, retried = _job(storage, "mail", attempts=1), _job(storage, "mail")
    claimed = storage.claim(["mail", "pdf"], owner="w", now=T, lease_seconds=30, limit=10)
    tokens = {job.id: token(job) for job in claimed}
    # A batch across two queues, then one more completion a minute later.
    batch = [Completion(i, tokens[i]) for i in done[:2] + done[3:]]
    assert storage.complete_many(batch, now=T + 5) == [True, True, True]
    assert storage.complete(done[2], tokens[done[2]], now=T + MINUTE + 1)
    assert storage.fail(dead, tokens[dead], BOOM, now=T + 6) is JobStatus.FAILED
    # A failed attempt that will be retried is not a failed job.
    assert storage.fail(retried, tokens[retried], BOOM, now=T + 7, retry_at=T + 8)
    history = _history(storage)
    assert history.throughput(since=T - MINUTE, until=T + 2 * MINUTE) == [
        ThroughputPoint(T - MINUTE, 0, 0),
        ThroughputPoint(T, 3, 1),
        ThroughputPoint(T + MINUTE, 1, 0),
    ]
    assert history.throughput(since=T, until=T + 2 * MINUTE, queue="pdf") == [
        ThroughputPoint(T, 1, 0),
        ThroughputPoint(T + MINUTE, 0, 0),
    ]
    assert history.throughput(since=T, until=T + 1, queue="nothing") == [ThroughputPoint(T, 0, 0)]
    hour = 3600 * (T // 3600)
    assert history.throughput(since=T, until=T + 1, bucket_seconds=3600) == [
        ThroughputPoint(hour, 4, 1)
    ]


def test_a_rescue_that_fails_a_job_counts_it(storage: Storage) -> None:
    job_id = _job(storage, "mail", attempts=1)
    claim_one(storage, T, queue="mail")
    assert storage.rescue_expired(now=T + 31).failed == (job_id,)
    assert _history(storage).throughput(since=T, until=T + 1, queue="mail") == [
        ThroughputPoint(T, 0, 1)
    ]


def test_counters_older_than_two_days_are_forgotten(storage: Storage) -> None:
    old, new = _job(storage), _job(storage)
    storage.complete(old, token(claim_one(storage, T)), now=T + 1)
    later = T + 3 * 86400
    storage.complete(new, token(claim_one(storage, later)), now=later + 1)
    storage.rescue_expired(now=later + 2)  # PostgreSQL folds its counters here
    history = _history(storage)
    assert history.throughput(since=T, until=T + 1) == [ThroughputPoint(T, 0, 0)]
    assert history.throughput(since=later, until=later + 1) == [ThroughputPoint(later, 1, 0)]


def test_folded_counters_keep_their_sums(storage: Storage) -> None:
    jobs = [_job(storage) for _ in range(5)]
    claimed = storage.claim(["default"], owner="w", now=T, lease_seconds=30, limit=10)
    for i, job in enumerate(claimed):
        storage.complete(job.id, token(job), now=T + i)
    storage.rescue_expired(now=T + 10)  # PostgreSQL folds its counters here
    storage.rescue_expired(now=T + 11)
    assert len(jobs) == 5
    assert _history(storage).throughput(since=T, until=T + 1) == [ThroughputPoint(T, 5, 0)]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"bucket_seconds": 30}, ValueError, "bucket_seconds must be 60 or 3600"),
        ({"since": T + 1, "until": T}, ValueError, "must not be after until"),
        ({"since": 0.0, "until": 1e9}, ValueError, "at most 10000"),
        ({"queue": 3}, TypeError, "queue must be a str"),
        ({"since": float("nan")}, ValueError, "since"),
    ],
)
def test_bad_throughput_ranges_are_refused(
    storage: Storage, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    args: dict[str, object] = {"since": T, "until": T + 60, **kwargs}
    with pytest.raises(error, match=match):
        _history(storage).throughput(**args)  # type: ignore[arg-type]
