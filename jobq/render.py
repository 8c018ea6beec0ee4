"""One rendering of a job for every outside view: ``jobq ... --json`` and the monitor.

:func:`job_to_dict` is the only place that turns a :class:`~jobq.job.Job` into
JSON-ready data; each view says what it hides (the monitor shows no payload and
no lease, the command line shows both) instead of writing its own copy.

Rule: a basic value; imports only :mod:`jobq.job`, never storage, the queue,
the command line or Flask.
"""

from __future__ import annotations

import json
from typing import Any

from .job import Job


def job_to_dict(
    job: Job, *, payload: bool = False, lease: bool = False, keep_invalid_json: bool = False
) -> dict[str, Any]:
    """``job`` as a JSON-ready dict, its stored JSON (payload, result, progress) decoded
    and its times in epoch seconds. The lease token is never shown.

    :param payload: include ``"payload"``, the job's arguments. Default False: they
        may hold what only the task should see.
    :param lease: include ``"lease_owner"`` and ``"lease_expires_at"``. Default False.
    :param keep_invalid_json: show stored text that is not JSON as the text itself.
        Default False: such text raises :class:`ValueError`.

    Keys, in order: ``id``, ``name``, ``queue``, ``status`` (its value), ``priority``,
    ``attempts``, ``max_attempts``, [``payload``], ``result``, ``progress``,
    ``error`` (None or ``{"type", "message", "traceback"}``), ``unique_key``,
    ``cancel_requested``, [``lease_owner``, ``lease_expires_at``], ``run_at``,
    ``created_at``, ``started_at``, ``finished_at``, ``updated_at``, ``expires_at``
    (None, or when the job ends cancelled if it has not started by then).
    ``created_at``, ``started_at``, ``finished_at``, ``updated_at``, ``limit_key``,
    ``batch_id`` (None, or the batch the job belongs to).
    """
    record: dict[str, Any] = {
        "id": job.id,
        "name": job.name,
        "queue": job.queue,
        "status": job.status.value,
        "priority": job.priority,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
    }
    if payload:
        record["payload"] = _decode(job.payload, keep_invalid_json)
    error = job.error
    record.update(
        {
            "result": _decode(job.result, keep_invalid_json),
            "progress": _decode(job.progress, keep_invalid_json),
            "error": None
            if error is None
            else {"type": error.type, "message": error.message, "traceback": error.traceback},
            "unique_key": job.unique_key,
            "cancel_requested": job.cancel_requested,
        }
    )
    if lease:
        record["lease_owner"] = job.lease_owner
        record["lease_expires_at"] = job.lease_expires_at
    record.update(
        {
            "run_at": job.run_at,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "updated_at": job.updated_at,
            "expires_at": job.expires_at,
            "limit_key": job.limit_key,
            "batch_id": job.batch_id,
        }
    )
    return record


def _decode(text: str | None, keep_invalid: bool) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        if keep_invalid:
            return text
        raise
