"""The storage contract, part 2: cancel, retry, reading and administration.

Every test runs once per backend (see conftest.py). Times are plain numbers
passed as ``now``: nothing here sleeps or reads a clock.
"""

from __future__ import annotations

import pytest

from jobq.job import JobStatus
from jobq.storage.base import NewJob, Storage, UniqueKeyConflict
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import BOOM, T0, claim_one, token

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)

# -- cancel and retry ------------------------------------------------------------------


def test_cancel_pending_is_immediate(storage: Storage) -> None:
    job_id = storage.enqueue(NewJob("t", "[]"), now=T0).job.id
    cancelled = storage.request_cancel(job_id, now=T0 + 1)
    assert cancelled is not None
    assert (cancelled.status, cancelled.finished_at) == (JobStatus.CANCELLED, T0 + 1)
    assert storage.claim(["default"], owner="w", now=T0 + 2, lease_seconds=30) == []
    assert storage.request_cancel(12345, now=T0) is None


def test_cancel_processing_sets_flag_and_worker_finishes_it(storage: Storage) -> None:
    storage.enqueue(NewJob("t", "[]"), now=T0)
    job = claim_one(storage)
    flagged = storage.request_cancel(job.id, now=T0 + 1)
    assert flagged is not None
    assert (flagged.status, flagged.cancel_requested) == (JobStatus.PROCESSING, True)
    assert not storage.finish_cancelled(job.id, "other-token", now=T0 + 2)
    assert storage.finish_cancelled(job.id, token(job), now=T0 + 2)
    done = storage.get(job.id)
    assert done is not None
    assert (done.status, done.finished_at) == (JobStatus.CANCELLED, T0 + 2)
    # Final jobs are left alone.
    again = storage.request_cancel(job.id, now=T0 + 3)
    assert again == done


def test_cancel_requested_job_is_not_retried_on_failure_or_rescue(storage: Storage) -> None:
    storage.enqueue_many([NewJob("t", "[]", max_attempts=5) for _ in range(2)], now=T0)
    a, b = storage.claim(["default"], owner="w", now=T0, lease_seconds=10, limit=2)
    storage.request_cancel(a.id, now=T0 + 1)
    storage.request_cancel(b.id, now=T0 + 1)
    assert storage.fail(a.id, token(a), BOOM, now=T0 + 2, retry_at=T0 + 3) == (JobStatus.CANCELLED)
    assert storage.rescue_expired(now=T0 + 10).cancelled == (b.id,)


def test_retry_resets_attempts_of_failed_and_cancelled_jobs(storage: Storage) -> None:
    job_id = storage.enqueue(NewJob("t", "[]", max_attempts=1), now=T0).job.id
    job = claim_one(storage)
    storage.set_progress(job_id, token(job), "0.5", now=T0)
    storage.fail(job_id, token(job), BOOM, now=T0 + 1, retry_at=T0 + 2)
    assert storage.retry(job_id, now=T0 + 5) is not None
    retried = storage.get(job_id)
    assert retried is not None
    assert (retried.status, retried.attempts, retried.max_attempts, retried.run_at) == (
        JobStatus.PENDING,
        0,
        1,
        T0 + 5,
    )
    assert retried.progress is None
    assert retried.finished_at is None
    assert retried.error == BOOM  # kept for reference
    assert claim_one(storage, T0 + 5).attempts == 1
    # Not failed or cancelled: nothing to retry.
    assert storage.retry(job_id, now=T0 + 6) is None
    cancelled = storage.enqueue(NewJob("t", "[]"), now=T0).job.id
    storage.request_cancel(cancelled, now=T0)
    again = storage.retry(cancelled, now=T0 + 7, run_at=T0 + 100)
    assert again is not None
    assert (again.status, again.run_at) == (JobStatus.PENDING, T0 + 100)


def test_retry_refuses_to_duplicate_a_live_unique_key(storage: Storage) -> None:
    old = storage.enqueue(NewJob("t", "[]", unique_key="k"), now=T0).job.id
    storage.request_cancel(old, now=T0)
    live = storage.enqueue(NewJob("t", "[]", unique_key="k"), now=T0).job.id
    with pytest.raises(UniqueKeyConflict) as info:
        storage.retry(old, now=T0 + 1)
    assert (info.value.unique_key, info.value.existing_id) == ("k", live)
    still = storage.get(old)
    assert still is not None
    assert still.status == JobStatus.CANCELLED


# -- reading: get, list, stats -----------------------------------------------------------


def test_list_filters_and_paginates_by_id(storage: Storage) -> None:
    ids = storage.enqueue_many(
        [NewJob("a" if i % 2 else "b", "[]", queue="q1" if i < 6 else "q2") for i in range(10)],
        now=T0,
    )
    storage.request_cancel(ids[1], now=T0)
    assert [j.id for j in storage.list_jobs(limit=4)] == ids[:4]
    assert [j.id for j in storage.list_jobs(limit=4, after_id=ids[3])] == ids[4:8]
    assert [j.id for j in storage.list_jobs(newest_first=True, limit=3)] == ids[:-4:-1]
    assert [j.id for j in storage.list_jobs(newest_first=True, after_id=ids[2])] == [ids[1], ids[0]]
    assert [j.id for j in storage.list_jobs(name="a", queue="q1")] == [ids[1], ids[3], ids[5]]
    assert [j.id for j in storage.list_jobs(status=JobStatus.CANCELLED)] == [ids[1]]
    assert [j.id for j in storage.list_jobs(status=JobStatus.PENDING, name="a")] == [
        ids[3],
        ids[5],
        ids[7],
        ids[9],
    ]
    with pytest.raises(ValueError, match="limit"):
        storage.list_jobs(limit=0)
    assert storage.get(99999) is None


def test_stats_counts_queues_schedules_and_recent_outcomes(storage: Storage) -> None:
    storage.enqueue_many(
        [
            NewJob("t", "[]", run_at=T0 - 40),
            NewJob("t", "[]", run_at=T0 - 10),
            NewJob("t", "[]", run_at=T0 + 60),
            NewJob("t", "[]", queue="mail", max_attempts=1),
            NewJob("t", "[]", queue="mail", max_attempts=1),
        ],
        now=T0 - 100,
    )
    old = claim_one(storage, T0 - 90, queue="mail")
    storage.complete(old.id, token(old), now=T0 - 80)  # more than a minute ago
    fresh = claim_one(storage, T0 - 5, queue="mail")
    storage.fail(fresh.id, token(fresh), BOOM, now=T0 - 1)
    running = claim_one(storage, T0)  # the one due at T0 - 40
    storage.pause("mail", now=T0)
    stats = storage.stats(now=T0)
    default, mail = stats.queues["default"], stats.queues["mail"]
    assert default.counts[JobStatus.PENDING] == 2
    assert default.counts[JobStatus.PROCESSING] == 1
    assert running.queue == "default"
    assert default.scheduled == 1
    assert default.oldest_runnable_age == 10.0
    assert mail.counts[JobStatus.COMPLETED] == 1
    assert mail.counts[JobStatus.FAILED] == 1
    assert mail.oldest_runnable_age == 0.0
    assert (stats.completed_last_minute, stats.failed_last_minute) == (0, 1)
    assert stats.paused == frozenset({"mail"})
    later = storage.stats(now=T0 + 61)
    assert later.queues["default"].scheduled == 0
    assert later.failed_last_minute == 0


def test_purge_deletes_old_final_jobs_in_batches(storage: Storage) -> None:
    ids = storage.enqueue_many([NewJob("t", "[]", max_attempts=1) for _ in range(7)], now=T0)
    jobs = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=7)
    for job in jobs[:5]:
        storage.complete(job.id, token(job), now=T0 + 1)
    storage.fail(jobs[5].id, token(jobs[5]), BOOM, now=T0 + 100)  # too recent
    kept_pending = storage.enqueue(NewJob("t", "[]"), now=T0).job.id
    assert storage.purge(older_than=T0 + 50, batch_size=2) == 5
    remaining = {job.id for job in storage.list_jobs()}
    assert remaining == {ids[5], ids[6], kept_pending}
    assert storage.purge(older_than=T0 + 200, statuses=[JobStatus.COMPLETED]) == 0
    assert storage.purge(older_than=T0 + 200, statuses=[JobStatus.FAILED]) == 1
    with pytest.raises(ValueError, match="only completed, failed or cancelled"):
        storage.purge(older_than=T0, statuses=[JobStatus.PENDING])


def test_storage_is_a_storage(storage: Storage) -> None:
    assert isinstance(storage, Storage)
