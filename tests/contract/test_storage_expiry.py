"""The storage contract for job expiry: claims pass over jobs past their
``expires_at``, :meth:`~jobq.storage.base.Storage.expire_jobs` ends them as
cancelled with the error ``Expired``, and the kept counts follow (once per backend)."""

from __future__ import annotations

import pytest

from jobq.job import JobStatus
from jobq.storage.base import NewJob, Storage
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import BOOM, T0, token
from tests.contract.test_storage_counts import recount

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)

# A whole second, so the message's time reads the same on every backend.
EXPIRY = 1_000_060.0


def _counts(storage: Storage, now: float, queue: str = "default") -> dict[JobStatus, int]:
    return storage.stats(now=now).queues[queue].counts


def test_claims_pass_over_expired_jobs_and_the_sweep_ends_them(storage: Storage) -> None:
    assert T0 < EXPIRY
    expiring = storage.enqueue(NewJob("t", "[1]", expires_at=EXPIRY), now=T0).job
    plain = storage.enqueue(NewJob("t", "[2]"), now=T0).job
    assert expiring.expires_at == EXPIRY
    assert plain.expires_at is None
    assert storage.get(expiring.id).expires_at == EXPIRY  # type: ignore[union-attr]

    # Before its expiry it is claimed as usual (here: released again).
    (first, second) = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=2)
    assert {first.id, second.id} == {expiring.id, plain.id}
    for job in (first, second):
        storage.release(job.id, token(job), now=T0)

    after = EXPIRY + 1
    claimed = storage.claim(["default"], owner="w", now=after, lease_seconds=30, limit=10)
    assert [job.id for job in claimed] == [plain.id]
    assert storage.claim(["default"], owner="w", now=after, lease_seconds=30, limit=10) == []
    assert storage.get(expiring.id).status is JobStatus.PENDING  # type: ignore[union-attr]

    assert storage.expire_jobs(now=after) == [expiring.id]
    ended = storage.get(expiring.id)
    assert ended is not None
    assert ended.status is JobStatus.CANCELLED
    assert ended.finished_at == after
    assert ended.attempts == 0
    assert ended.error is not None
    assert ended.error.type == "Expired"
    assert ended.error.message == "expired at 1970-01-12T13:47:40Z before it started"
    assert storage.expire_jobs(now=after) == []
    counts = _counts(storage, after)
    assert (counts[JobStatus.CANCELLED], counts[JobStatus.PROCESSING]) == (1, 1)
    assert counts[JobStatus.PENDING] == 0
    assert recount(storage)["default"] == counts


def test_a_job_waiting_for_a_retry_past_its_expiry_expires_too(storage: Storage) -> None:
    job = storage.enqueue(NewJob("t", "[]", expires_at=EXPIRY), now=T0).job
    (held,) = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=1)
    assert storage.fail(held.id, token(held), BOOM, now=T0, retry_at=EXPIRY + 30) is (
        JobStatus.PENDING
    )
    assert storage.expire_jobs(now=EXPIRY - 1) == []
    assert storage.expire_jobs(now=EXPIRY) == [job.id]  # not yet due: ended all the same
    ended = storage.get(job.id)
    assert ended is not None
    assert ended.status is JobStatus.CANCELLED
    assert ended.error is not None
    assert ended.error.message == "expired at 1970-01-12T13:47:40Z before attempt 2 started"


def test_running_and_finished_jobs_are_left_alone(storage: Storage) -> None:
    running = storage.enqueue(NewJob("t", "[1]", expires_at=EXPIRY), now=T0).job
    done = storage.enqueue(NewJob("t", "[2]", expires_at=EXPIRY), now=T0).job
    held = {
        j.id: j for j in storage.claim(["default"], owner="w", now=T0, lease_seconds=900, limit=2)
    }
    assert storage.complete(done.id, token(held[done.id]), now=T0)
    assert storage.expire_jobs(now=EXPIRY + 5) == []
    assert storage.get(running.id).status is JobStatus.PROCESSING  # type: ignore[union-attr]
    assert storage.complete(running.id, token(held[running.id]), now=EXPIRY + 5)


def test_every_enqueue_path_stores_the_expiry_and_the_sweep_goes_in_batches(
    storage: Storage,
) -> None:
    ids = storage.enqueue_many(
        [NewJob("t", "[1]", expires_at=EXPIRY), NewJob("t", "[2]", queue="other")], now=T0
    )
    ids += storage.enqueue_payloads(NewJob("t", "", expires_at=EXPIRY + 1), ["[3]", "[4]"], now=T0)
    ids.append(
        storage.enqueue(NewJob("t", "[5]", unique_key="k", expires_at=EXPIRY), now=T0).job.id
    )
    expiries = [storage.get(i).expires_at for i in ids]  # type: ignore[union-attr]
    assert expiries == [EXPIRY, None, EXPIRY + 1, EXPIRY + 1, EXPIRY]
    now = EXPIRY + 10
    first = storage.expire_jobs(now=now, limit=2)
    second = storage.expire_jobs(now=now, limit=2)
    assert len(first) == len(second) == 2
    assert storage.expire_jobs(now=now, limit=2) == []
    assert sorted(first + second) == sorted(ids[:1] + ids[2:])
    assert _counts(storage, now)[JobStatus.CANCELLED] == 4
    assert _counts(storage, now, "other")[JobStatus.PENDING] == 1
    # The unique key is free again once its job expired.
    assert storage.enqueue(NewJob("t", "[6]", unique_key="k"), now=now).created


def test_a_manual_retry_of_an_expired_job_drops_its_expiry(storage: Storage) -> None:
    job = storage.enqueue(NewJob("t", "[]", expires_at=EXPIRY), now=T0).job
    storage.expire_jobs(now=EXPIRY)
    retried = storage.retry(job.id, now=EXPIRY + 1)
    assert retried is not None
    assert retried.status is JobStatus.PENDING
    assert retried.expires_at is None
    (claimed,) = storage.claim(["default"], owner="w", now=EXPIRY + 1, lease_seconds=30, limit=1)
    assert claimed.id == job.id


@pytest.mark.parametrize("bad", [float("nan"), "soon", float("inf")])
def test_a_bad_expiry_is_refused_before_anything_is_written(storage: Storage, bad: object) -> None:
    with pytest.raises(ValueError, match="expires_at"):
        storage.enqueue(NewJob("t", "[]", expires_at=bad), now=T0)  # type: ignore[arg-type]
    assert storage.list_jobs() == []
    with pytest.raises(ValueError, match="limit"):
        storage.expire_jobs(now=T0, limit=0)
