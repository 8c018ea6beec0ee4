"""What crosses between a worker thread and its child process: JSON text only.

A job goes to the child as its stored fields; an attempt's :class:`Outcome`
comes back as its kind, result text, error (type, message, traceback text) and
retry delay. No object is ever pickled: the child finds the task by its name in
the registry it inherited, and an exception comes back as text, raised again in
the worker as :class:`~jobq.ChildTaskError` only for logs and signals.

Rule: imports basic values and the worker's :class:`Outcome` only.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ...errors import ChildTaskError
from ...job import Job, JobError, JobStatus
from ..execute import Outcome

_JOB_FIELDS = tuple(field.name for field in dataclasses.fields(Job))


def encode_job(job: Job) -> bytes:
    """``job`` as JSON: every field by name (a status by value, an error as a list)."""
    fields: dict[str, Any] = {}
    for name in _JOB_FIELDS:
        value = getattr(job, name)
        if isinstance(value, JobStatus):
            value = value.value
        elif isinstance(value, JobError):
            value = [value.type, value.message, value.traceback]
        fields[name] = value
    return json.dumps(fields, separators=(",", ":")).encode()


def decode_job(data: bytes) -> Job:
    """The job :func:`encode_job` wrote."""
    fields = json.loads(data)
    fields["status"] = JobStatus(fields["status"])
    if fields["error"] is not None:
        fields["error"] = JobError(*fields["error"])
    return Job(**fields)


def encode_outcome(outcome: Outcome) -> bytes:
    """What a child answers for an attempt it ran (the exception as text only)."""
    error = outcome.error
    answer = {
        "kind": outcome.kind,
        "result": outcome.result,
        "error": None if error is None else [error.type, error.message, error.traceback],
        "delay": outcome.delay,
    }
    return json.dumps(answer, separators=(",", ":")).encode()


def decode_outcome(data: bytes) -> Outcome:
    """The outcome :func:`encode_outcome` wrote; its ``exception`` is a
    :class:`~jobq.ChildTaskError` carrying the error's text."""
    answer = json.loads(data)
    error = None if answer["error"] is None else JobError(*answer["error"])
    exception = None
    if error is not None:
        exception = ChildTaskError(error.type, error.message, error.traceback)
    return Outcome(
        answer["kind"],
        result=answer["result"],
        error=error,
        delay=answer["delay"],
        exception=exception,
    )
