"""The storage contract, batches: counts kept by every path that ends a job, the
callback jobs inserted once when a sealed batch's last job ends, cancel, errors.

Every test runs once per backend, Redis included (see conftest.py). Times are
plain numbers passed as ``now``: nothing here sleeps or reads a clock.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from jobq.errors import BatchNotFound, BatchSealed
from jobq.job import JobStatus
from jobq.storage.base import Completion, NewJob, Storage
from jobq.storage.batches import BatchState, NewBatch
from jobq.storage.bulk import JobFilter
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import BOOM, T0, token

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)

REPORT = NewBatch(on_complete="report", meta='{"newsletter": 7}')


def _batch(storage: Storage, jobs: int, batch: NewBatch = REPORT) -> tuple[BatchState, list[int]]:
    state = storage.create_batch(batch, now=T0)
    ids = storage.enqueue_payloads_in_batch(
        state.id, NewJob("t", ""), [f"[{i}]" for i in range(jobs)], now=T0
    )
    return state, ids


def _callbacks(storage: Storage, batch_id: int) -> list[tuple[str, dict[str, Any]]]:
    state = storage.batch(batch_id)
    assert state is not None
    found = []
    for job_id in state.callback_job_ids:
        job = storage.get(job_id)
        assert job is not None
        assert job.status is JobStatus.PENDING
        assert job.batch_id is None
        found.append((job.name, json.loads(job.payload)["args"][0]))
    return found


def _run_all(storage: Storage, now: float, fail: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    jobs = storage.claim(["default"], owner="w", now=now, lease_seconds=30, limit=1000)
    done = [Completion(j.id, token(j)) for j in jobs if j.id not in fail]
    storage.complete_many(done, now=now + 1)
    for job in jobs:
        if job.id in fail:
            storage.fail(job.id, token(job), BOOM, now=now + 1)


def test_a_new_batch_is_open_and_empty(storage: Storage) -> None:
    state = storage.create_batch(REPORT, now=T0)
    assert (state.total, state.pending, state.ended, state.sealed) == (0, 0, 0, False)
    assert (state.on_complete, state.queue, state.created_at) == ("report", "default", T0)
    assert state.decoded_meta() == {"newsletter": 7}
    assert storage.batch(state.id) == state
    assert storage.batch(state.id + 1000) is None


def test_jobs_carry_their_batch_and_are_counted(storage: Storage) -> None:
    state, ids = _batch(storage, 3)
    more = storage.enqueue_in_batch(state.id, [NewJob("u", '{"a":1}', priority=5)], now=T0)
    assert ids == sorted(ids)
    assert more[0] > ids[-1]
    for job_id in [*ids, *more]:
        job = storage.get(job_id)
        assert job is not None
        assert job.batch_id == state.id
    lone = storage.enqueue(NewJob("t", "[]"), now=T0).job
    assert lone.batch_id is None
    now = storage.batch(state.id)
    assert now is not None
    assert (now.total, now.pending, now.processing) == (4, 4, 0)
    claimed = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=2)
    assert all(job.batch_id == state.id for job in claimed)
    now = storage.batch(state.id)
    assert now is not None
    assert (now.pending, now.processing) == (2, 2)


def test_an_open_batch_never_fires(storage: Storage) -> None:
    state, _ = _batch(storage, 2)
    _run_all(storage, T0 + 1)
    now = storage.batch(state.id)
    assert now is not None
    assert (now.completed, now.finished_at) == (2, None)
    assert now.callback_job_ids == ()
    sealed = storage.seal_batch(state.id, now=T0 + 5)  # all ended already: fires on seal
    assert sealed.finished_at is not None
    assert len(sealed.callback_job_ids) == 1
    name, summary = _callbacks(storage, state.id)[0]
    assert name == "report"
    assert summary == {
        "id": state.id,
        "event": "complete",
        "total": 2,
        "completed": 2,
        "failed": 0,
        "cancelled": 0,
        "meta": {"newsletter": 7},
    }
    assert storage.seal_batch(state.id, now=T0 + 6).callback_job_ids == sealed.callback_job_ids


def test_the_last_end_of_a_sealed_batch_fires_once(storage: Storage) -> None:
    state, _ids = _batch(storage, 3)
    storage.seal_batch(state.id, now=T0)
    jobs = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=10)
    assert storage.complete(jobs[0].id, token(jobs[0]), now=T0 + 1)
    assert storage.fail(jobs[1].id, token(jobs[1]), BOOM, now=T0 + 1) is JobStatus.FAILED
    middle = storage.batch(state.id)
    assert middle is not None
    assert middle.finished_at is None
    assert middle.processing == 1
    storage.complete_many([Completion(jobs[2].id, token(jobs[2]))], now=T0 + 2)
    assert [(n, s["completed"], s["failed"]) for n, s in _callbacks(storage, state.id)] == [
        ("report", 2, 1)
    ]
    done = storage.batch(state.id)
    assert done is not None
    assert done.finished_at == T0 + 2
    assert done.ended == 3
    stats = storage.stats(now=T0 + 3).queues["default"].counts
    assert stats[JobStatus.PENDING] == 1  # the callback job is counted like any job


def test_success_and_failure_callbacks_follow_the_outcome(storage: Storage) -> None:
    kinds = NewBatch(on_complete="c", on_success="s", on_failure="f", queue="reports")
    good, _ = _batch(storage, 2, kinds)
    storage.seal_batch(good.id, now=T0)
    _run_all(storage, T0 + 1)
    assert [(n, s["event"]) for n, s in _callbacks(storage, good.id)] == [
        ("c", "complete"),
        ("s", "success"),
    ]
    bad, ids = _batch(storage, 2, kinds)
    storage.seal_batch(bad.id, now=T0)
    _run_all(storage, T0 + 2, fail={ids[0]})
    assert [(n, s["event"]) for n, s in _callbacks(storage, bad.id)] == [
        ("c", "complete"),
        ("f", "failure"),
    ]
    callback = storage.get(storage.batch(bad.id).callback_job_ids[0])  # type: ignore[union-attr]
    assert callback is not None
    assert callback.queue == "reports"


def test_a_retry_before_the_end_counts_back_and_the_batch_waits(storage: Storage) -> None:
    state, _ids = _batch(storage, 2)
    storage.seal_batch(state.id, now=T0)
    jobs = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=10)
    storage.fail(jobs[0].id, token(jobs[0]), BOOM, now=T0 + 1)
    # A failure with a retry left goes back to pending: not an end.
    assert storage.fail(jobs[1].id, token(jobs[1]), BOOM, now=T0 + 1, retry_at=T0 + 5) is (
        JobStatus.PENDING
    )
    now = storage.batch(state.id)
    assert now is not None
    assert (now.failed, now.pending, now.finished_at) == (1, 1, None)
    assert storage.retry(jobs[0].id, now=T0 + 2) is not None  # failed -> pending
    now = storage.batch(state.id)
    assert now is not None
    assert (now.failed, now.pending) == (0, 2)
    _run_all(storage, T0 + 10)
    assert [s["completed"] for _, s in _callbacks(storage, state.id)] == [2]


def test_every_path_that_ends_a_job_is_counted(storage: Storage) -> None:
    state = storage.create_batch(REPORT, now=T0)
    once = NewJob("t", "", max_attempts=1)
    ids = storage.enqueue_payloads_in_batch(
        state.id, once, ["[0]", "[1]", "[2]", "[3]", "[4]"], now=T0
    )
    (bulk,) = storage.enqueue_in_batch(state.id, [NewJob("u", "[]")], now=T0)
    (expiring,) = storage.enqueue_in_batch(
        state.id, [NewJob("t", "[9]", expires_at=T0 + 1, run_at=T0 + 100)], now=T0
    )
    storage.seal_batch(state.id, now=T0)
    storage.request_cancel(ids[0], now=T0)  # pending -> cancelled
    assert storage.cancel_matching(JobFilter(name="u"), now=T0).changed == 1
    assert storage.expire_jobs(now=T0 + 2) == [expiring]
    jobs = storage.claim(["default"], owner="w", now=T0 + 2, lease_seconds=30, limit=10)
    assert [j.id for j in jobs] == ids[1:]
    assert storage.complete(jobs[0].id, token(jobs[0]), now=T0 + 3)
    assert storage.fail(jobs[1].id, token(jobs[1]), BOOM, now=T0 + 3) is JobStatus.FAILED
    middle = storage.batch(state.id)
    assert middle is not None
    assert (middle.cancelled, middle.completed, middle.failed) == (3, 1, 1)
    assert middle.finished_at is None
    # Leases that lapse on jobs without an attempt left: they end failed, the last end.
    assert len(storage.rescue_expired(now=T0 + 40).failed) == 2
    assert [
        (s["cancelled"], s["completed"], s["failed"]) for _, s in _callbacks(storage, state.id)
    ] == [(3, 1, 3)]
    assert bulk not in ids


def test_rescue_and_cancel_requests_end_jobs_of_the_batch(storage: Storage) -> None:
    state, _ids = _batch(storage, 3, REPORT)
    storage.seal_batch(state.id, now=T0)
    jobs = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=10)
    storage.request_cancel(jobs[0].id, now=T0 + 1)  # processing: a request only
    assert storage.finish_cancelled(jobs[0].id, token(jobs[0]), now=T0 + 2)
    assert storage.release(jobs[1].id, token(jobs[1]), now=T0 + 2) is JobStatus.PENDING
    rescued = storage.rescue_expired(now=T0 + 100)  # jobs[2]: back to pending (attempts left)
    assert rescued.requeued == (jobs[2].id,)
    now = storage.batch(state.id)
    assert now is not None
    assert (now.cancelled, now.pending, now.finished_at) == (1, 2, None)
    _run_all(storage, T0 + 200)
    assert [(s["completed"], s["cancelled"]) for _, s in _callbacks(storage, state.id)] == [(2, 1)]


def test_cancel_ends_pending_jobs_and_asks_running_ones(storage: Storage) -> None:
    state, _ids = _batch(storage, 3)
    running = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=1)[0]
    cancelled = storage.cancel_batch(state.id, now=T0 + 1)
    assert cancelled.sealed
    assert cancelled.cancel_requested
    assert (cancelled.cancelled, cancelled.processing, cancelled.finished_at) == (2, 1, None)
    assert storage.renew(
        [(running.id, token(running))], now=T0 + 2, lease_seconds=30
    ).cancel_requested == {running.id}
    assert storage.finish_cancelled(running.id, token(running), now=T0 + 3)
    assert [(s["cancelled"], s["total"]) for _, s in _callbacks(storage, state.id)] == [(3, 3)]
    with pytest.raises(BatchSealed):
        storage.enqueue_in_batch(state.id, [NewJob("t", "[]")], now=T0)


def test_an_empty_sealed_batch_fires_at_once(storage: Storage) -> None:
    state = storage.create_batch(NewBatch(on_complete="report", on_success="ok"), now=T0)
    sealed = storage.seal_batch(state.id, now=T0 + 1)
    assert sealed.finished_at == T0 + 1
    assert [s["total"] for _, s in _callbacks(storage, state.id)] == [0, 0]


def test_sealed_and_unknown_batches_refuse_jobs_and_store_nothing(storage: Storage) -> None:
    state, _ = _batch(storage, 1)
    storage.seal_batch(state.id, now=T0)
    before = storage.count_jobs(JobFilter())
    with pytest.raises(BatchSealed, match="sealed"):
        storage.enqueue_payloads_in_batch(state.id, NewJob("t", ""), ["[1]"], now=T0)
    with pytest.raises(BatchNotFound):
        storage.enqueue_in_batch(state.id + 99, [NewJob("t", "[]")], now=T0)
    with pytest.raises(BatchNotFound):
        storage.seal_batch(state.id + 99, now=T0)
    with pytest.raises(BatchNotFound):
        storage.cancel_batch(-1, now=T0)
    assert storage.count_jobs(JobFilter()) == before


def test_bad_arguments_are_refused_before_anything_is_written(storage: Storage) -> None:
    with pytest.raises(ValueError, match="meta must be a JSON object"):
        storage.create_batch(NewBatch(meta="[1]"), now=T0)
    with pytest.raises(ValueError, match="on_success"):
        storage.create_batch(NewBatch(on_success=""), now=T0)
    with pytest.raises(ValueError, match="max_attempts"):
        storage.create_batch(NewBatch(max_attempts=0), now=T0)
    state = storage.create_batch(REPORT, now=T0)
    with pytest.raises(ValueError, match="unique_key"):
        storage.enqueue_in_batch(state.id, [NewJob("t", "[]", unique_key="k")], now=T0)
    other = storage.enqueue(NewJob("t", "[]"), now=T0).job.id
    with pytest.raises(ValueError, match="cannot have depends_on"):
        storage.enqueue_in_batch(state.id, [NewJob("t", "[]", depends_on=(other,))], now=T0)
    with pytest.raises(ValueError, match="cannot have depends_on"):
        storage.enqueue_payloads_in_batch(
            state.id, NewJob("t", "", depends_on=(other,)), ["[]"], now=T0
        )
    with pytest.raises(TypeError):
        storage.enqueue_payloads_in_batch(state.id, NewJob("t", ""), [b"[]"], now=T0)  # type: ignore[list-item]
    assert storage.batch(state.id).total == 0  # type: ignore[union-attr]
    assert storage.list_batches() == [storage.batch(state.id)]


def test_batches_are_listed_newest_first_by_pages(storage: Storage) -> None:
    made = [storage.create_batch(REPORT, now=T0 + i).id for i in range(5)]
    first = storage.list_batches(limit=2)
    assert [b.id for b in first] == made[::-1][:2]
    rest = storage.list_batches(before_id=first[-1].id, limit=10)
    assert [b.id for b in rest] == made[::-1][2:]
    with pytest.raises(ValueError, match="limit"):
        storage.list_batches(limit=0)


def test_two_batches_ended_in_one_complete_many_both_fire(storage: Storage) -> None:
    a, _ = _batch(storage, 2)
    b, _ = _batch(storage, 2)
    storage.seal_batch(a.id, now=T0)
    storage.seal_batch(b.id, now=T0)
    _run_all(storage, T0 + 1)
    assert len(_callbacks(storage, a.id)) == 1
    assert len(_callbacks(storage, b.id)) == 1


def test_threads_ending_the_last_jobs_at_once_fire_once(storage: Storage) -> None:
    state, ids = _batch(storage, 40)
    storage.seal_batch(state.id, now=T0)
    jobs = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=100)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def end(part: int) -> None:
        try:
            start.wait()
            for job in jobs[part::4]:
                if job.id % 5:
                    storage.complete(job.id, token(job), now=T0 + 1)
                else:
                    storage.fail(job.id, token(job), BOOM, now=T0 + 1)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=end, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    failed = sum(1 for job_id in ids if job_id % 5 == 0)
    assert [(s["completed"], s["failed"]) for _, s in _callbacks(storage, state.id)] == [
        (40 - failed, failed)
    ]


def test_a_pending_job_deleted_counts_as_cancelled(storage: Storage) -> None:
    state, _ids = _batch(storage, 3)
    storage.seal_batch(state.id, now=T0)
    jobs = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=1)
    deleted = storage.delete_matching(JobFilter(statuses=frozenset({JobStatus.PENDING})), now=T0)
    assert deleted.changed == 2
    middle = storage.batch(state.id)
    assert middle is not None
    assert (middle.cancelled, middle.finished_at) == (2, None)
    storage.complete(jobs[0].id, token(jobs[0]), now=T0 + 1)
    assert [(s["completed"], s["cancelled"]) for _, s in _callbacks(storage, state.id)] == [(1, 2)]
    # Purging the ended jobs later changes nothing in the batch.
    storage.purge(older_than=T0 + 10)
    assert storage.batch(state.id).ended == 3  # type: ignore[union-attr]


def test_purge_deletes_finished_batches_once_their_jobs_are_gone(storage: Storage) -> None:
    done, _ = _batch(storage, 2)
    storage.seal_batch(done.id, now=T0)
    _run_all(storage, T0)  # the two jobs complete at T0 + 1; the callback is enqueued
    still_running, _ = _batch(storage, 1)
    storage.seal_batch(still_running.id, now=T0)
    (callback,) = storage.batch(done.id).callback_job_ids  # type: ignore[union-attr]
    assert storage.purge(older_than=T0 + 100) == 2  # the jobs; the callback is pending
    assert storage.batch(done.id) is not None  # its callback job is left
    claimed = {
        job.id: job
        for job in storage.claim(["default"], owner="w", now=T0 + 2, lease_seconds=30, limit=5)
    }
    storage.complete(callback, token(claimed[callback]), now=T0 + 3)
    assert storage.purge(older_than=T0 + 2) == 0  # the callback finished after that
    assert storage.batch(done.id) is not None
    assert storage.purge(older_than=T0 + 100) == 1
    assert storage.batch(done.id) is None
    assert storage.batch(still_running.id) is not None  # not finished: kept
    assert [b.id for b in storage.list_batches()] == [still_running.id]


def test_listing_below_an_id_past_every_id_lists_from_the_newest(storage: Storage) -> None:
    made = storage.create_batch(REPORT, now=T0).id
    assert [b.id for b in storage.list_batches(before_id=2**64)] == [made]
    assert storage.list_batches(before_id=made) == []


def test_a_retry_after_the_end_moves_the_counts_but_never_fires_again(storage: Storage) -> None:
    state, ids = _batch(storage, 2)
    storage.seal_batch(state.id, now=T0)
    _run_all(storage, T0 + 1, fail={ids[0]})
    first = storage.batch(state.id)
    assert first is not None
    assert (first.completed, first.failed, len(first.callback_job_ids)) == (1, 1, 1)
    retried = storage.retry_matching(JobFilter(statuses=frozenset({JobStatus.FAILED})), now=T0 + 5)
    assert retried.changed == 1
    back = storage.batch(state.id)
    assert back is not None
    assert (back.failed, back.pending, back.finished_at) == (0, 1, first.finished_at)
    jobs = storage.claim(["default"], owner="w", now=T0 + 6, lease_seconds=30, limit=10)
    (job,) = [j for j in jobs if j.id == ids[0]]
    assert storage.complete(job.id, token(job), now=T0 + 7)
    last = storage.batch(state.id)
    assert last is not None
    assert (last.completed, last.failed) == (2, 0)
    assert (last.callback_job_ids, last.finished_at) == (first.callback_job_ids, first.finished_at)
    assert storage.count_jobs(JobFilter(name="report")) == 1
