"""The storage contract: what an enqueue does when a live job of its task holds its
unique key (``NewJob.on_duplicate``: keep it, or replace it while it is pending).
Run once per backend."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from jobq.job import JobStatus
from jobq.storage.base import NewJob, Storage
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import BOOM, T0, claim_one, token
from tests.helpers import run_children

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)


def replacing(payload: str, *, unique_key: str = "doc-1", **fields: Any) -> NewJob:
    return NewJob("reindex", payload, unique_key=unique_key, on_duplicate="replace", **fields)


def test_keep_returns_the_holder_unchanged(storage: Storage) -> None:
    first = storage.enqueue(NewJob("reindex", "[1]", unique_key="doc-1"), now=T0)
    again = storage.enqueue(NewJob("reindex", "[2]", unique_key="doc-1", priority=5), now=T0 + 1)
    assert (again.created, again.replaced) == (False, False)
    assert again.job == first.job
    assert storage.get(first.job.id) == first.job


def test_replace_gives_the_pending_holder_the_new_arguments_and_run_time(storage: Storage) -> None:
    first = storage.enqueue(replacing("[1]", run_at=T0 + 100, max_attempts=5), now=T0).job
    replaced = storage.enqueue(
        replacing("[2]", run_at=T0 + 7, priority=3, queue="other", max_attempts=1), now=T0 + 1
    )
    assert (replaced.created, replaced.replaced) == (False, True)
    job = replaced.job
    assert job.id == first.id
    assert (job.payload, job.run_at, job.priority) == ("[2]", T0 + 7, 3)
    # The job's identity and retry budget stay its own.
    assert (job.queue, job.max_attempts, job.created_at) == ("default", 5, first.created_at)
    assert job.updated_at == T0 + 1
    assert storage.get(job.id) == job
    assert [j.id for j in storage.list_jobs()] == [first.id]


def test_replace_without_run_at_makes_the_job_due_now(storage: Storage) -> None:
    storage.enqueue(replacing("[1]", run_at=T0 + 100), now=T0)
    assert storage.enqueue(replacing("[2]"), now=T0 + 1).job.run_at == T0 + 1
    assert claim_one(storage, now=T0 + 1).payload == "[2]"


def test_debounce_pushes_the_run_time_with_each_enqueue(storage: Storage) -> None:
    # A debounce is a replace whose run time is now + the window, at each enqueue.
    storage.enqueue(replacing("[1]", run_at=T0 + 30), now=T0)
    storage.enqueue(replacing("[2]", run_at=T0 + 20 + 30), now=T0 + 20)
    assert storage.claim(["default"], owner="w", now=T0 + 49, lease_seconds=30) == []
    job = claim_one(storage, now=T0 + 50)
    assert job.payload == "[2]"
    assert len(storage.list_jobs()) == 1


def test_replace_never_touches_a_processing_holder(storage: Storage) -> None:
    first = storage.enqueue(replacing("[1]"), now=T0).job
    running = claim_one(storage, now=T0)
    after = storage.enqueue(replacing("[2]", run_at=T0 + 5), now=T0 + 1)
    assert (after.created, after.replaced) == (True, False)
    assert after.job.id != first.id
    assert (after.job.payload, after.job.unique_key) == ("[2]", "doc-1")
    old = storage.get(first.id)
    assert old is not None
    # It runs as claimed; it gave its key to the new job.
    assert (old.status, old.payload, old.unique_key) == (JobStatus.PROCESSING, "[1]", None)
    assert storage.complete(running.id, token(running), now=T0 + 2)
    # The new job holds the key: it is the one replaced now, and keep finds it.
    again = storage.enqueue(replacing("[3]"), now=T0 + 3)
    assert (again.job.id, again.replaced) == (after.job.id, True)
    kept = storage.enqueue(NewJob("reindex", "[4]", unique_key="doc-1"), now=T0 + 4)
    assert (kept.job.id, kept.job.payload) == (after.job.id, "[3]")


def test_a_superseded_job_that_fails_retries_without_the_key(storage: Storage) -> None:
    storage.enqueue(replacing("[1]"), now=T0)
    running = claim_one(storage, now=T0)
    newer = storage.enqueue(replacing("[2]"), now=T0 + 1).job
    assert storage.fail(running.id, token(running), BOOM, now=T0 + 2, retry_at=T0 + 3) is (
        JobStatus.PENDING
    )
    assert storage.enqueue(replacing("[3]"), now=T0 + 4).job.id == newer.id
    assert storage.get(running.id).payload == "[1]"  # type: ignore[union-attr]


def test_replace_keeps_the_attempts_of_a_pending_retry(storage: Storage) -> None:
    storage.enqueue(replacing("[1]"), now=T0)
    running = claim_one(storage, now=T0)
    storage.fail(running.id, token(running), BOOM, now=T0, retry_at=T0 + 60)
    job = storage.enqueue(replacing("[2]"), now=T0 + 1).job
    assert (job.id, job.attempts, job.payload, job.run_at) == (running.id, 1, "[2]", T0 + 1)
    assert job.error == BOOM


def test_replace_is_scoped_to_the_task(storage: Storage) -> None:
    mine = storage.enqueue(replacing("[1]"), now=T0).job
    other = storage.enqueue(
        NewJob("mail", "[9]", unique_key="doc-1", on_duplicate="replace"), now=T0
    )
    assert other.created
    assert storage.get(mine.id).payload == "[1]"  # type: ignore[union-attr]


def test_enqueue_many_replaces_in_order(storage: Storage) -> None:
    held = storage.enqueue(replacing("[0]", run_at=T0 + 100), now=T0).job
    ids = storage.enqueue_many(
        [replacing("[1]"), NewJob("reindex", "[x]"), replacing("[2]", run_at=T0 + 9)], now=T0 + 1
    )
    assert ids[0] == ids[2] == held.id != ids[1]
    job = storage.get(held.id)
    assert job is not None
    assert (job.payload, job.run_at) == ("[2]", T0 + 9)
    fresh = storage.enqueue_many([replacing("[3]", unique_key="doc-2")] * 2, now=T0)
    assert fresh[0] == fresh[1]


def test_enqueue_payloads_with_replace_keeps_the_last(storage: Storage) -> None:
    ids = storage.enqueue_payloads(replacing(""), ["[1]", "[2]", "[3]"], now=T0)
    assert len(set(ids)) == 1
    assert storage.get(ids[0]).payload == "[3]"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (NewJob("t", "[]", on_duplicate="replace"), "needs a unique_key"),
        (NewJob("t", "[]", unique_key="k", on_duplicate="newest"), "on_duplicate must be one of"),
    ],
)
def test_a_bad_policy_is_refused_and_writes_nothing(
    storage: Storage, job: NewJob, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        storage.enqueue(job, now=T0)
    with pytest.raises(ValueError, match=message):
        storage.enqueue_many([NewJob("t", "[]"), job], now=T0)
    assert storage.list_jobs() == []


def test_racing_replaces_and_claims_never_change_a_running_job(storage: Storage) -> None:
    """Threads replace one key while another claims and completes: every enqueue's
    answer holds its own arguments, a claimed job keeps the arguments it was claimed
    with, and at the end one pending job holds the last enqueue's arguments."""
    writers = 6
    start = threading.Barrier(writers + 1)
    stop = threading.Event()
    errors: list[BaseException] = []
    claimed: dict[int, str] = {}

    def enqueue(n: int) -> None:
        try:
            start.wait(timeout=10)
            for i in range(15):
                payload = json.dumps([n, i])
                if i % 3 == 2:
                    storage.enqueue_many([replacing(payload)], now=T0)
                    continue
                enqueued = storage.enqueue(replacing(payload), now=T0)
                # The answer is the job as this enqueue left it.
                assert enqueued.job.payload == payload, (enqueued, payload)
                assert enqueued.created or enqueued.replaced
        except BaseException as exc:
            errors.append(exc)

    def claim() -> None:
        try:
            start.wait(timeout=10)
            while not stop.is_set():
                for job in storage.claim(["default"], owner="c", now=T0, lease_seconds=60):
                    claimed[job.id] = job.payload
                    assert storage.complete(job.id, token(job), now=T0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=enqueue, args=(n,)) for n in range(writers)]
    claimer = threading.Thread(target=claim)
    for thread in [*threads, claimer]:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    stop.set()
    claimer.join(timeout=60)
    assert not errors, errors
    jobs = storage.list_jobs()
    for job in jobs:
        if job.id in claimed:
            assert (job.status, job.payload) == (JobStatus.COMPLETED, claimed[job.id])
    live = [job for job in jobs if job.status is JobStatus.PENDING]
    assert len(live) <= 1
    last = storage.enqueue(replacing('"last"'), now=T0)
    assert [j.payload for j in storage.list_jobs(status=JobStatus.PENDING)] == ['"last"']
    assert last.job.unique_key == "doc-1"


@pytest.mark.slow  # starts processes: the full suite runs it, not --fast
def test_racing_processes_leave_one_pending_job_with_a_last_enqueue(
    spec: dict[str, Any], storage: Storage
) -> None:
    results = run_children(
        [[json.dumps(spec), "enqueue-replace", "reindex", "doc-1", str(n), "12"] for n in range(4)]
    )
    assert all(result["own"] for result in results), results  # each answer held its own args
    jobs = storage.list_jobs()
    assert len(jobs) == 1, jobs
    job = jobs[0]
    assert job.status is JobStatus.PENDING
    assert json.loads(job.payload) in [[n, 11] for n in range(4)]
    assert job.run_at in {T0 + 1000 + 11 + n for n in range(4)}  # the same enqueue's run time
    assert json.loads(job.payload)[0] + T0 + 1000 + 11 == job.run_at
