"""The storage contract, filters and bulk actions: find, count, retry, cancel and
delete every job matching a :class:`~jobq.storage.bulk.JobFilter`.

Every test runs once per backend (see conftest.py); times are plain numbers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobq.job import JobStatus
from jobq.storage.base import NewJob, Storage
from jobq.storage.bulk import BulkResult, JobFilter, PayloadMatch
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import BOOM, T0, claim_one, token
from tests.contract.test_storage_counts import recount

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)


def _payload(*args: Any, **kwargs: Any) -> str:
    return json.dumps({"args": list(args), "kwargs": kwargs})


def _ids(storage: Storage, filter: JobFilter, **options: Any) -> list[int]:
    return [job.id for job in storage.find_jobs(filter, **options)]


def _counts_agree(storage: Storage, now: float) -> None:
    stats = storage.stats(now=now)
    assert {q: s.counts for q, s in stats.queues.items()} == recount(storage)


def _fail(storage: Storage, queue: str = "default", now: float = T0) -> int:
    job = claim_one(storage, now, queue=queue)
    assert storage.fail(job.id, token(job), BOOM, now=now) is JobStatus.FAILED
    return job.id


VALUES: list[Any] = [42, "42", True, 1, 42.5, None, False, 0, "", "x"]


def test_payload_matches_keep_json_types_apart(storage: Storage) -> None:
    ids = storage.enqueue_many(
        [NewJob("t", _payload(user_id=v)) for v in VALUES]
        + [NewJob("t", _payload(v)) for v in VALUES]
        + [NewJob("t", _payload(v, user_id="other")) for v in VALUES]
        + [NewJob("t", "[]"), NewJob("t", _payload(trace={"user_id": 42}))],
        now=T0,
    )
    n = len(VALUES)
    for i, value in enumerate(VALUES):
        keyword = JobFilter(payload=(PayloadMatch("user_id", value),))
        assert _ids(storage, keyword) == [ids[i]], value
        either = JobFilter(payload=(PayloadMatch("user_id", value, 0),))
        assert _ids(storage, either) == [ids[i], ids[n + i], ids[2 * n + i]], value
        assert storage.count_jobs(either) == 3
    # Numbers match by value, as in Python: 42 == 42.0.
    assert _ids(storage, JobFilter(payload=(PayloadMatch("user_id", 42.0),))) == [ids[0]]
    # Several matches must all hold.
    both = JobFilter(payload=(PayloadMatch("user_id", "other"), PayloadMatch("a", True, 0)))
    assert _ids(storage, both) == [ids[2 * n + 2]]
    assert _ids(storage, JobFilter(payload=(PayloadMatch("user_id", 42, 1),))) == [ids[0]]


def test_filters_combine_statuses_queue_name_and_times(storage: Storage) -> None:
    a = storage.enqueue(NewJob("send", "[]", queue="mail"), now=T0).job.id
    b = storage.enqueue(NewJob("send", "[]"), now=T0 + 10).job.id
    c = storage.enqueue(NewJob("other", "[]", queue="mail"), now=T0 + 20).job.id
    failed = _fail(storage, "mail", now=T0 + 30)  # a: claimed first (oldest run_at)
    assert failed == a
    assert _ids(storage, JobFilter()) == [a, b, c]
    assert _ids(storage, JobFilter(queue="mail")) == [a, c]
    assert _ids(storage, JobFilter(name="send")) == [a, b]
    assert _ids(storage, JobFilter(statuses={JobStatus.FAILED})) == [a]
    assert _ids(storage, JobFilter(statuses={"failed", "pending"}, queue="mail")) == [a, c]
    assert _ids(storage, JobFilter(created_after=T0 + 10)) == [b, c]
    assert _ids(storage, JobFilter(created_before=T0 + 10)) == [a]
    assert _ids(storage, JobFilter(updated_before=T0 + 25)) == [b, c]  # a changed at T0 + 30
    assert storage.count_jobs(JobFilter(queue="nowhere")) == 0


def test_pages_follow_the_cursor_both_ways(storage: Storage) -> None:
    ids = storage.enqueue_many([NewJob("t", _payload(n % 2)) for n in range(25)], now=T0)
    odd = JobFilter(payload=(PayloadMatch("n", 1, 0),))
    expected = ids[1::2]
    pages: list[list[int]] = []
    after = None
    while page := _ids(storage, odd, after_id=after, limit=5):
        pages.append(page)
        after = page[-1]
    assert [i for p in pages for i in p] == expected
    assert len(pages) == 3
    down = _ids(storage, odd, newest_first=True, limit=4)
    assert down == expected[::-1][:4]
    assert (
        _ids(storage, odd, newest_first=True, after_id=down[-1], limit=4) == (expected[::-1][4:8])
    )
    storage.request_cancel(expected[2], now=T0)
    mixed = JobFilter(statuses={"pending", "cancelled"}, payload=odd.payload)
    assert _ids(storage, mixed, newest_first=True, after_id=expected[4], limit=3) == [
        expected[3],
        expected[2],
        expected[1],
    ]
    assert _ids(storage, odd, after_id=2**70) == []
    assert _ids(storage, odd, after_id=-5) == expected
    with pytest.raises(ValueError, match="limit"):
        storage.find_jobs(odd, limit=0)
    with pytest.raises(TypeError, match="JobFilter"):
        storage.count_jobs({"status": "failed"})  # type: ignore[arg-type]


def test_retry_matching_moves_failed_and_cancelled_back_and_skips_held_keys(
    storage: Storage,
) -> None:
    storage.enqueue_many(
        [NewJob("t", "[]", queue="q", unique_key="k", max_attempts=1)]
        + [NewJob("t", "[]", queue="q", max_attempts=1) for _ in range(2)],
        now=T0,
    )
    failed = [_fail(storage, "q") for _ in range(3)]
    # Two more with the key: one fails (so two failed jobs share "k"), one stays live.
    storage.enqueue(NewJob("t", "[]", queue="q", unique_key="k", max_attempts=1), now=T0 + 1)
    failed.append(_fail(storage, "q", now=T0 + 1))
    cancelled = storage.enqueue(NewJob("t", "[]", queue="q"), now=T0 + 2).job.id
    storage.request_cancel(cancelled, now=T0 + 2)
    live = storage.enqueue(NewJob("t", "[]", queue="q", unique_key="k"), now=T0 + 3).job
    assert live.status is JobStatus.PENDING
    result = storage.retry_matching(JobFilter(queue="q"), now=T0 + 10)
    assert result == BulkResult(changed=3, skipped=2)  # both "k" jobs are held by `live`
    for job_id in (failed[1], failed[2], cancelled):
        job = storage.get(job_id)
        assert job is not None
        assert job.status is JobStatus.PENDING
        assert job.attempts == 0
        assert job.run_at == T0 + 10
        assert job.finished_at is None
    assert storage.get(failed[0]).status is JobStatus.FAILED  # type: ignore[union-attr]
    _counts_agree(storage, T0 + 10)
    # With the live holder gone, only the oldest of the two "k" jobs comes back.
    storage.request_cancel(live.id, now=T0 + 11)
    again = storage.retry_matching(JobFilter(statuses={"failed"}), now=T0 + 12)
    assert again == BulkResult(changed=1, skipped=1)
    assert storage.get(failed[0]).status is JobStatus.PENDING  # type: ignore[union-attr]
    assert storage.retry_matching(JobFilter(statuses={"pending"}), now=T0) == BulkResult(0)
    _counts_agree(storage, T0 + 12)


def test_cancel_matching_cancels_pending_and_asks_processing_to_stop(storage: Storage) -> None:
    storage.enqueue_many([NewJob("send", _payload(user_id=7)) for _ in range(4)], now=T0)
    other = storage.enqueue(NewJob("send", _payload(user_id=8)), now=T0).job.id
    running = claim_one(storage)
    done = claim_one(storage)
    storage.complete(done.id, token(done), now=T0)
    seven = JobFilter(name="send", payload=(PayloadMatch("user_id", 7),))
    assert storage.cancel_matching(seven, now=T0 + 5) == BulkResult(3)
    stopped = storage.get(running.id)
    assert stopped is not None
    assert stopped.cancel_requested
    assert stopped.status is JobStatus.PROCESSING
    assert storage.get(other).status is JobStatus.PENDING  # type: ignore[union-attr]
    assert storage.count_jobs(seven.narrowed({JobStatus.CANCELLED})) == 2
    assert storage.cancel_matching(seven, now=T0 + 6) == BulkResult(0)  # asked already
    renewed = storage.renew([(running.id, token(running))], now=T0 + 6, lease_seconds=5)
    assert running.id in renewed.cancel_requested
    _counts_agree(storage, T0 + 6)


def test_delete_matching_never_deletes_processing_jobs(storage: Storage) -> None:
    storage.enqueue_many([NewJob("t", "[]", queue="q") for _ in range(5)], now=T0)
    running = claim_one(storage, queue="q")
    _fail(storage, "q")
    result = storage.delete_matching(JobFilter(queue="q"), now=T0 + 1)
    assert result == BulkResult(changed=4, skipped=1)
    assert _ids(storage, JobFilter()) == [running.id]
    assert storage.delete_matching(JobFilter(statuses={"processing"}), now=T0) == (BulkResult(0, 1))
    _counts_agree(storage, T0 + 1)


def test_bulk_actions_run_in_batches_and_keep_counts(storage: Storage) -> None:
    total = 2_500
    storage.enqueue_payloads(
        NewJob("t", "", queue="big", max_attempts=1),
        [_payload(user_id=n % 2) for n in range(total)],
        now=T0,
    )
    storage.enqueue(NewJob("t", "[]", queue="small"), now=T0)
    big = JobFilter(queue="big")
    assert storage.count_jobs(big) == total
    cancelled = storage.cancel_matching(big, now=T0 + 1, batch_size=1000)
    assert cancelled == BulkResult(total)
    _counts_agree(storage, T0 + 1)
    even = JobFilter(queue="big", payload=(PayloadMatch("user_id", 0),))
    assert storage.retry_matching(even, now=T0 + 2, batch_size=700) == BulkResult(total // 2)
    _counts_agree(storage, T0 + 2)
    assert storage.count_jobs(big.narrowed({JobStatus.PENDING})) == total // 2
    assert storage.delete_matching(big, now=T0 + 3, batch_size=1000) == BulkResult(total)
    _counts_agree(storage, T0 + 3)
    assert list(storage.stats(now=T0 + 3).queues) == ["small"]


def test_bad_filters_and_options_are_refused(storage: Storage) -> None:
    with pytest.raises(ValueError, match="identifier"):
        PayloadMatch("user id", 1)
    with pytest.raises(ValueError, match="str, int, float, bool or None"):
        PayloadMatch("user_id", [1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        PayloadMatch("x", float("nan"))
    with pytest.raises(ValueError, match="statuses"):
        JobFilter(statuses={"done"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="created_after"):
        JobFilter(created_after=float("inf"))
    with pytest.raises(ValueError, match="batch_size"):
        storage.delete_matching(JobFilter(queue="q"), now=T0, batch_size=0)
    assert JobFilter().is_empty
    assert not JobFilter(statuses="failed").is_empty
