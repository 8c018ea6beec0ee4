"""A model-based test of the Storage contract (jobq/storage/base.py).

Hypothesis drives a real storage and a pure-Python model of it with the same
random steps: enqueue (with or without a unique key, now or later), claims by
several workers, renewals, complete, fail (with or without a retry time),
release, finish as cancelled, cancel requests, retries, the clock moving on,
a worker that crashes (forgets its leases) and the rescue of expired leases.
Time is injected: every call gets ``now`` from the machine's clock.

After every step: each job is in exactly the state the model says (status,
attempts, lease token, run time, cancel request), no two workers hold one
live lease, attempts never pass ``max_attempts``, a unique key is held by at
most one live job, final jobs only move through ``retry``, and ``stats()``
counts what the model counts.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from jobq import JobStatus, UniqueKeyConflict
from jobq.storage import SQLiteStorage
from jobq.storage.base import JobError, NewJob, Storage
from tests.helpers import (
    drop_postgres_schema,
    drop_redis_prefix,
    postgres_schema_url,
    redis_test_prefix,
    require_redis,
)

P, R, C, F, X = (
    JobStatus.PENDING,
    JobStatus.PROCESSING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)
LIVE = (P, R)
WORKERS = ("w1", "w2", "w3")
ERROR = JobError("ValueError", "boom")


@dataclass
class Model:
    """What one job should look like."""

    id: int
    max_attempts: int
    run_at: float
    unique_key: str | None
    status: JobStatus = P
    attempts: int = 0
    token: str | None = None
    expires: float | None = None
    cancel_requested: bool = False
    tokens: set[str] = field(default_factory=set)  # every token it ever had


class StorageMachine(RuleBasedStateMachine):
    """The contract, step by step, against a model. Subclasses say which backend."""

    def open(self) -> Storage:
        self.folder = Path(tempfile.mkdtemp(prefix="jobq-model-"))
        return SQLiteStorage(self.folder / "jobs.db")

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def __init__(self) -> None:
        super().__init__()
        self.storage = self.open()
        self.now = 1_000_000.0
        self.jobs: dict[int, Model] = {}
        self.held: dict[str, dict[int, str]] = {w: {} for w in WORKERS}  # worker's view

    def teardown(self) -> None:
        self.storage.close()
        self.discard()

    # -- helpers --------------------------------------------------------------------------

    def holder_of(self, key: str) -> Model | None:
        return next(
            (j for j in self.jobs.values() if j.unique_key == key and j.status in LIVE), None
        )

    def holds(self, job: Model, token: str) -> bool:
        return job.status is R and job.token == token

    def end_lease(self, job: Model, status: JobStatus) -> None:
        job.status = status
        job.expires = None

    def pick(self, data: st.DataObject, worker: str) -> tuple[Model, str]:
        job_id = data.draw(st.sampled_from(sorted(self.held[worker])), label="held job")
        return self.jobs[job_id], self.held[worker].pop(job_id)

    # -- rules ----------------------------------------------------------------------------

    @rule(
        key=st.sampled_from([None, None, "k1", "k2"]),
        delay=st.sampled_from([0.0, 3.0, 30.0]),
        max_attempts=st.integers(1, 3),
        replace=st.booleans(),
    )
    def enqueue(self, key: str | None, delay: float, max_attempts: int, replace: bool) -> None:
        run_at = self.now + delay if delay else None
        policy = "replace" if replace and key else "keep"
        new = NewJob(
            "t", "[]", max_attempts=max_attempts, run_at=run_at, unique_key=key, on_duplicate=policy
        )
        stored, created, replaced = self.storage.enqueue(new, now=self.now)
        holder = self.holder_of(key) if key else None
        if holder is not None and policy == "replace" and holder.status is P:
            assert (created, replaced, stored.id) == (False, True, holder.id)
            holder.run_at = run_at or self.now  # its max_attempts stays
            return
        if holder is not None and policy == "replace":  # running: it gives the key up
            holder.unique_key = None
        elif holder is not None:
            assert (created, replaced, stored.id) == (False, False, holder.id)
            return
        assert created
        assert stored.id not in self.jobs
        self.jobs[stored.id] = Model(stored.id, max_attempts, run_at or self.now, key)

    @rule(
        worker=st.sampled_from(WORKERS), limit=st.integers(1, 3), lease=st.sampled_from([5.0, 20.0])
    )
    def claim(self, worker: str, limit: int, lease: float) -> None:
        got = self.storage.claim(
            ["default"], owner=worker, now=self.now, lease_seconds=lease, limit=limit
        )
        runnable = sorted(
            (j for j in self.jobs.values() if j.status is P and j.run_at <= self.now),
            key=lambda j: (j.run_at, j.id),
        )
        assert [j.id for j in got] == [j.id for j in runnable[:limit]]
        for stored in got:
            job = self.jobs[stored.id]
            assert stored.lease_token is not None
            assert stored.lease_token not in job.tokens, "a lease token came back"
            job.status, job.attempts = R, job.attempts + 1
            job.token, job.expires = stored.lease_token, self.now + lease
            job.tokens.add(stored.lease_token)
            self.held[worker][job.id] = stored.lease_token
            assert stored.attempts == job.attempts

    @precondition(lambda self: any(self.held.values()))
    @rule(worker=st.sampled_from(WORKERS), lease=st.sampled_from([5.0, 20.0]))
    def renew(self, worker: str, lease: float) -> None:
        leases = list(self.held[worker].items())
        result = self.storage.renew(leases, now=self.now, lease_seconds=lease)
        renewed = {i for i, token in leases if self.holds(self.jobs[i], token)}
        assert result.renewed == renewed
        assert result.lost == {i for i, _ in leases} - renewed
        assert result.cancel_requested == {i for i in renewed if self.jobs[i].cancel_requested}
        for job_id in renewed:
            self.jobs[job_id].expires = self.now + lease
        for job_id in result.lost:
            del self.held[worker][job_id]

    @precondition(lambda self: any(self.held.values()))
    @rule(worker=st.sampled_from(WORKERS), data=st.data())
    def complete(self, worker: str, data: st.DataObject) -> None:
        if not self.held[worker]:
            return
        job, token = self.pick(data, worker)
        expected = self.holds(job, token)
        assert self.storage.complete(job.id, token, now=self.now, result="1") is expected
        if expected:
            self.end_lease(job, C)

    @precondition(lambda self: any(self.held.values()))
    @rule(
        worker=st.sampled_from(WORKERS), data=st.data(), retry_in=st.sampled_from([None, 0.0, 10.0])
    )
    def fail(self, worker: str, data: st.DataObject, retry_in: float | None) -> None:
        if not self.held[worker]:
            return
        job, token = self.pick(data, worker)
        retry_at = None if retry_in is None else self.now + retry_in
        status = self.storage.fail(job.id, token, ERROR, now=self.now, retry_at=retry_at)
        if not self.holds(job, token):
            assert status is None
            return
        if job.cancel_requested:
            expected = X
        elif retry_at is not None and job.attempts < job.max_attempts:
            expected, job.run_at = P, retry_at
        else:
            expected = F
        assert status is expected
        self.end_lease(job, expected)

    @precondition(lambda self: any(self.held.values()))
    @rule(worker=st.sampled_from(WORKERS), data=st.data())
    def release(self, worker: str, data: st.DataObject) -> None:
        if not self.held[worker]:
            return
        job, token = self.pick(data, worker)
        status = self.storage.release(job.id, token, now=self.now)
        if not self.holds(job, token):
            assert status is None
            return
        expected = X if job.cancel_requested else P
        assert status is expected
        job.attempts = max(job.attempts - 1, 0)
        job.run_at = self.now
        self.end_lease(job, expected)

    @precondition(lambda self: any(self.held.values()))
    @rule(worker=st.sampled_from(WORKERS), data=st.data())
    def finish_cancelled(self, worker: str, data: st.DataObject) -> None:
        if not self.held[worker]:
            return
        job, token = self.pick(data, worker)
        expected = self.holds(job, token)
        assert self.storage.finish_cancelled(job.id, token, now=self.now) is expected
        if expected:
            self.end_lease(job, X)

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data())
    def request_cancel(self, data: st.DataObject) -> None:
        job = self.jobs[data.draw(st.sampled_from(sorted(self.jobs)), label="job")]
        stored = self.storage.request_cancel(job.id, now=self.now)
        if job.status is P:
            job.status = X
        elif job.status is R:
            job.cancel_requested = True
        assert stored is not None
        assert stored.status is job.status

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        job = self.jobs[data.draw(st.sampled_from(sorted(self.jobs)), label="job")]
        holder = self.holder_of(job.unique_key) if job.unique_key else None
        if job.status in (F, X) and holder is not None:
            with pytest.raises(UniqueKeyConflict):
                self.storage.retry(job.id, now=self.now)
            return
        stored = self.storage.retry(job.id, now=self.now)
        if job.status not in (F, X):
            assert stored is None
            return
        assert stored is not None
        job.status, job.attempts, job.run_at = P, 0, self.now
        job.cancel_requested, job.token, job.expires = False, None, None

    @rule(seconds=st.sampled_from([1.0, 4.0, 10.0, 25.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule(worker=st.sampled_from(WORKERS))
    def crash(self, worker: str) -> None:
        self.held[worker] = {}

    @rule()
    def rescue_expired(self) -> None:
        result = self.storage.rescue_expired(now=self.now)
        expected: dict[JobStatus, set[int]] = {P: set(), F: set(), X: set()}
        for job in self.jobs.values():
            if job.status is R and job.expires is not None and job.expires <= self.now:
                if job.cancel_requested:
                    status = X
                elif job.attempts < job.max_attempts:
                    status = P
                else:
                    status = F
                expected[status].add(job.id)
                self.end_lease(job, status)
        assert set(result.requeued) == expected[P]
        assert set(result.failed) == expected[F]
        assert set(result.cancelled) == expected[X]

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def jobs_match_the_model(self) -> None:
        for job in self.jobs.values():
            stored = self.storage.get(job.id)
            assert stored is not None
            assert stored.status is job.status, (job, stored)
            assert stored.attempts == job.attempts, (job, stored)
            assert stored.cancel_requested == job.cancel_requested, (job, stored)
            assert stored.unique_key == job.unique_key, (job, stored)
            assert 0 <= stored.attempts <= stored.max_attempts == job.max_attempts
            if job.status is P:
                assert stored.run_at == job.run_at
                assert stored.attempts < stored.max_attempts
            if job.status is R:
                assert stored.lease_token == job.token
                assert stored.lease_expires_at == job.expires
            else:
                assert stored.lease_expires_at is None
            assert (stored.finished_at is not None) == job.status.is_final

    @invariant()
    def at_most_one_live_lease_per_job(self) -> None:
        for job in self.jobs.values():
            if job.status is R:  # tokens are unique: one worker at most knows the live one
                assert sum(self.held[w].get(job.id) == job.token for w in WORKERS) <= 1

    @invariant()
    def unique_keys_held_once(self) -> None:
        keys = [j.unique_key for j in self.jobs.values() if j.unique_key and j.status in LIVE]
        assert len(keys) == len(set(keys))

    @invariant()
    def stats_count_the_model(self) -> None:
        stats = self.storage.stats(now=self.now)
        counts = stats.queues["default"].counts if self.jobs else {}
        for status in JobStatus:
            assert counts.get(status, 0) == sum(j.status is status for j in self.jobs.values())
        assert stats.queues.keys() <= {"default"}


class PostgresMachine(StorageMachine):
    def open(self) -> Storage:
        from jobq.storage.postgres import PostgresStorage

        self.url = postgres_schema_url()
        return PostgresStorage(self.url, clock="caller", max_connections=2)

    def discard(self) -> None:
        drop_postgres_schema(self.url)


class RedisMachine(StorageMachine):
    def open(self) -> Storage:
        from jobq.storage.redis import RedisStorage

        self.prefix = redis_test_prefix()
        # The test server keeps nothing on disk: no durability warning.
        return RedisStorage(
            require_redis(), prefix=self.prefix, clock="caller", durability="ignore"
        )

    def discard(self) -> None:
        drop_redis_prefix(self.prefix)


SETTINGS = settings(
    deadline=None, stateful_step_count=40, suppress_health_check=[HealthCheck.too_slow]
)


class TestSQLiteStorageModel(StorageMachine.TestCase):
    settings = settings(SETTINGS, max_examples=250)


@pytest.mark.postgres
class TestPostgresStorageModel(PostgresMachine.TestCase):
    settings = settings(SETTINGS, max_examples=50)


@pytest.mark.redis
class TestRedisStorageModel(RedisMachine.TestCase):
    settings = settings(SETTINGS, max_examples=100)
