"""Helpers shared by the storage contract tests."""

from __future__ import annotations

from jobq.job import Job, JobError
from jobq.storage.base import Storage

T0 = 1_000_000.0
BOOM = JobError("ValueError", "boom", "Traceback (most recent call last): ...")


def claim_one(
    storage: Storage,
    now: float = T0,
    *,
    queue: str = "default",
    lease: float = 30.0,
    owner: str = "w1",
) -> Job:
    """Claim from ``queue`` and insist on exactly one job."""
    jobs = storage.claim([queue], owner=owner, now=now, lease_seconds=lease)
    assert len(jobs) == 1, jobs
    return jobs[0]


def token(job: Job) -> str:
    """The lease token of a claimed job."""
    assert job.lease_token is not None
    return job.lease_token
