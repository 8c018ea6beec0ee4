"""The storage contract: a throttled enqueue (``NewJob.throttle``) returns the job of
its task and key created within the window, even one that has ended. Run once per
backend."""

from __future__ import annotations

import threading

import pytest

from jobq.job import JobStatus
from jobq.storage.base import NewJob, Storage
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import T0, claim_one, token

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)


def throttled(payload: str = "[]", name: str = "digest", window: float = 60.0) -> NewJob:
    return NewJob(name, payload, unique_key="user-1", throttle=window)


def test_an_ended_job_within_the_window_is_returned(storage: Storage) -> None:
    first = storage.enqueue(throttled("[1]"), now=T0).job
    job = claim_one(storage, now=T0 + 1)
    assert storage.complete(job.id, token(job), now=T0 + 2)
    again = storage.enqueue(throttled("[2]"), now=T0 + 59)
    assert (again.created, again.replaced) == (False, False)
    assert (again.job.id, again.job.status, again.job.payload) == (
        first.id,
        JobStatus.COMPLETED,
        "[1]",
    )
    later = storage.enqueue(throttled("[3]"), now=T0 + 60)  # the window is open: (now - 60, now]
    assert later.created
    assert later.job.payload == "[3]"
    # The window counts from the newest job's creation.
    assert storage.enqueue(throttled("[4]"), now=T0 + 119).job.id == later.job.id


def test_a_live_job_older_than_the_window_still_holds_the_key(storage: Storage) -> None:
    first = storage.enqueue(throttled(window=10), now=T0).job
    again = storage.enqueue(throttled(window=10), now=T0 + 100)
    assert (again.created, again.job.id) == (False, first.id)


def test_the_window_is_per_task_and_key(storage: Storage) -> None:
    storage.enqueue(throttled(), now=T0)
    assert storage.enqueue(throttled(name="other"), now=T0).created
    assert storage.enqueue(NewJob("digest", "[]", unique_key="user-2", throttle=60), now=T0).created
    # Without a throttle the ended job is no obstacle.
    job = claim_one(storage, now=T0)
    storage.complete(job.id, token(job), now=T0)
    assert storage.enqueue(NewJob("digest", "[]", unique_key="user-1"), now=T0 + 1).created


def test_enqueue_many_throttles_too(storage: Storage) -> None:
    ids = storage.enqueue_many([throttled("[1]"), throttled("[2]")], now=T0)
    assert ids[0] == ids[1]
    job = claim_one(storage, now=T0)
    storage.complete(job.id, token(job), now=T0)
    assert storage.enqueue_many([throttled("[3]")], now=T0 + 30) == [ids[0]]


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (NewJob("t", "[]", throttle=60), "throttle needs a unique_key"),
        (NewJob("t", "[]", unique_key="k", throttle=0), "throttle must be a number"),
        (NewJob("t", "[]", unique_key="k", throttle=float("nan")), "throttle must be a number"),
        (
            NewJob("t", "[]", unique_key="k", on_duplicate="replace", throttle=5),
            'on_duplicate="keep"',
        ),
    ],
)
def test_a_bad_throttle_is_refused(storage: Storage, job: NewJob, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        storage.enqueue(job, now=T0)
    assert storage.list_jobs() == []


def test_racing_threads_after_the_job_ended_store_one_job(storage: Storage) -> None:
    """The unique index covers live jobs only: once the job ended, concurrent throttled
    enqueues must still agree on one new job (and the claimer ending it meanwhile
    must not let a second one in)."""
    first = storage.enqueue(throttled(window=10), now=T0).job
    job = claim_one(storage, now=T0)
    storage.complete(job.id, token(job), now=T0)
    start = threading.Barrier(6)
    seen: set[int] = set()
    errors: list[BaseException] = []

    def enqueue() -> None:
        try:
            start.wait(timeout=10)
            for _ in range(10):
                enqueued = storage.enqueue(throttled(window=10), now=T0 + 20)
                seen.add(enqueued.job.id)
        except BaseException as exc:
            errors.append(exc)

    def finish() -> None:
        try:
            start.wait(timeout=10)
            for _ in range(10):
                for claimed in storage.claim(["default"], owner="c", now=T0 + 20, lease_seconds=9):
                    storage.complete(claimed.id, token(claimed), now=T0 + 20)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=enqueue) for _ in range(5)] + [
        threading.Thread(target=finish)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(seen) == 1
    assert first.id not in seen
    assert len(storage.list_jobs()) == 2
