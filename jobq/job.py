"""The job record: :class:`Job`, its :class:`JobStatus` and its last :class:`JobError`.

These are plain values returned by storage; holding one never holds a lease
or a database connection. Payload, result and progress are kept as the JSON
text that was stored (encoding is the caller's job, see
:mod:`jobq.storage.base`); :meth:`Job.decoded_payload` and friends decode it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any


class JobStatus(str, Enum):
    """Where a job is in its life.

    ``pending`` waits for its ``run_at`` and a worker; ``processing`` is held by
    a worker's lease; ``completed``, ``failed`` and ``cancelled`` are final
    (only an explicit retry moves a failed or cancelled job back to pending).
    """

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True for ``completed``, ``failed`` and ``cancelled``."""
        return self in _FINAL


_FINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class JobError:
    """The last error a job met: an exception's type name, message and traceback.

    :param type: the exception's qualified type name, e.g. ``"ValueError"``, or
        ``"LeaseExpired"`` when a worker stopped renewing its lease, or
        ``"WorkerDied"`` when a pool on the same host saw its worker process gone.
    :param message: ``str(exception)``; may be empty.
    :param traceback: the formatted traceback text, or None when there is none.
    """

    type: str
    message: str
    traceback: str | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """One job as stored, a snapshot taken when storage returned it.

    Times are wall-clock epoch seconds (floats), as passed in ``now=`` to the
    storage call that wrote them.

    :param id: positive integer, unique in the database and never reused.
    :param queue: name of the queue the job waits in.
    :param name: registered task name the job runs.
    :param payload: the arguments as JSON text, exactly as enqueued.
    :param priority: higher runs first among runnable jobs of a queue; default 0.
    :param status: see :class:`JobStatus`.
    :param attempts: attempts started so far (a claim counts one, even if the
        worker then dies).
    :param max_attempts: attempts allowed before the job ends ``failed``; >= 1.
    :param run_at: earliest time the job may be claimed.
    :param lease_owner: the worker that holds (or last held) the lease.
    :param lease_token: the random token of the current (or last) lease; the
        holder passes it back to complete, fail or renew.
    :param lease_expires_at: when the current lease lapses unless renewed;
        None when the job is not ``processing``.
    :param error: the last error, kept across retries; None if none yet.
    :param result: JSON text the task returned, for completed jobs.
    :param progress: JSON text the task last reported, or None.
    :param unique_key: while the job is pending or processing, no other job
        of the same task with this key is enqueued (keys are per task); None
        for no such constraint.
    :param cancel_requested: a cancel was asked while the job was processing;
        the worker should stop it.
    :param created_at: when it was enqueued.
    :param started_at: when the latest attempt was claimed, or None.
    :param finished_at: when it reached a final status, or None.
    :param updated_at: when the row last changed.
    :param expires_at: no attempt starts after this time (epoch seconds): a job
        still pending then ends ``cancelled`` with the error ``Expired``; None
        for no expiry.
    :param limit_key: the group its task's per-key limits count it in (see the
        task's ``limit_key``), computed when it was enqueued; None for none.
    :param batch_id: the batch the job belongs to (:meth:`jobq.DurableQueue.batch`),
        or None.
    """

    id: int
    queue: str
    name: str
    payload: str
    priority: int
    status: JobStatus
    attempts: int
    max_attempts: int
    run_at: float
    lease_owner: str | None
    lease_token: str | None
    lease_expires_at: float | None
    error: JobError | None
    result: str | None
    progress: str | None
    unique_key: str | None
    cancel_requested: bool
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    expires_at: float | None = None
    limit_key: str | None = None
    batch_id: int | None = None

    def decoded_payload(self) -> Any:
        """The payload decoded with :func:`json.loads`."""
        return json.loads(self.payload)

    def decoded_result(self) -> Any:
        """The result decoded with :func:`json.loads`; None when there is no result."""
        return None if self.result is None else json.loads(self.result)

    def decoded_progress(self) -> Any:
        """The progress decoded with :func:`json.loads`; None when none was reported."""
        return None if self.progress is None else json.loads(self.progress)


# The slots' own setters: a frozen dataclass's __init__ calls object.__setattr__ for
# each field, twice the cost of these, and storage builds a job for every row a
# worker claims or a listing reads.
_new_job = object.__new__
(
    _set_id,
    _set_queue,
    _set_name,
    _set_payload,
    _set_priority,
    _set_status,
    _set_attempts,
    _set_max_attempts,
    _set_run_at,
    _set_lease_owner,
    _set_lease_token,
    _set_lease_expires_at,
    _set_error,
    _set_result,
    _set_progress,
    _set_unique_key,
    _set_cancel_requested,
    _set_created_at,
    _set_started_at,
    _set_finished_at,
    _set_updated_at,
    _set_expires_at,
    _set_limit_key,
    _set_batch_id,
) = (Job.__dict__[name].__set__ for name in Job.__dataclass_fields__)


def make_job(
    id: int,
    queue: str,
    name: str,
    payload: str,
    priority: int,
    status: JobStatus,
    attempts: int,
    max_attempts: int,
    run_at: float,
    lease_owner: str | None,
    lease_token: str | None,
    lease_expires_at: float | None,
    error: JobError | None,
    result: str | None,
    progress: str | None,
    unique_key: str | None,
    cancel_requested: bool,
    created_at: float,
    started_at: float | None,
    finished_at: float | None,
    updated_at: float,
    expires_at: float | None = None,
    limit_key: str | None = None,
    batch_id: int | None = None,
) -> Job:
    """``Job(...)`` with every field given, built faster (for storage's hot paths)."""
    job: Job = _new_job(Job)
    _set_id(job, id)
    _set_queue(job, queue)
    _set_name(job, name)
    _set_payload(job, payload)
    _set_priority(job, priority)
    _set_status(job, status)
    _set_attempts(job, attempts)
    _set_max_attempts(job, max_attempts)
    _set_run_at(job, run_at)
    _set_lease_owner(job, lease_owner)
    _set_lease_token(job, lease_token)
    _set_lease_expires_at(job, lease_expires_at)
    _set_error(job, error)
    _set_result(job, result)
    _set_progress(job, progress)
    _set_unique_key(job, unique_key)
    _set_cancel_requested(job, cancel_requested)
    _set_created_at(job, created_at)
    _set_started_at(job, started_at)
    _set_finished_at(job, finished_at)
    _set_updated_at(job, updated_at)
    _set_expires_at(job, expires_at)
    _set_limit_key(job, limit_key)
    _set_batch_id(job, batch_id)
    return job
