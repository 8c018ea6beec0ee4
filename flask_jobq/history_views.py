"""The monitor's job history and throughput endpoints (JSON), on the monitoring
blueprint of :mod:`flask_jobq.views`, which calls :func:`register_history_views`:

- ``GET <prefix>/jobs/<id>/attempts``: the job's attempts that did not complete,
  each with its error and traceback, and its timeline (``queue.attempts``,
  ``queue.timeline``).
- ``GET <prefix>/throughput?last=3600&bucket=60&queue=``: jobs that ended
  completed and failed per minute or hour (``queue.throughput``).

Documented in :mod:`flask_jobq.openapi`; the blueprint's authorisation covers them.
"""

from __future__ import annotations

import math
from dataclasses import asdict

from flask import Blueprint, abort, request
from flask.typing import ResponseReturnValue

from jobq.errors import JobNotFound
from jobq.storage.history import BUCKET_SECONDS, KEEP_COUNTERS_SECONDS

from .state import state_for

_MAX_JOB_ID = 2**63 - 1
_THROUGHPUT_PARAMETERS = frozenset({"last", "bucket", "queue"})


def register_history_views(bp: Blueprint) -> None:
    """Add the history endpoints to the monitoring blueprint ``bp``."""

    @bp.get("/jobs/<int:job_id>/attempts")
    def job_attempts(job_id: int) -> ResponseReturnValue:
        """The job's attempts that did not complete (with their errors) and its timeline."""
        if job_id > _MAX_JOB_ID:
            raise JobNotFound(job_id)
        queue = state_for().queue
        attempts = queue.attempts(job_id)
        return {
            "job_id": job_id,
            "attempts": [attempt.as_dict() for attempt in attempts],
            "timeline": [asdict(event) for event in queue.timeline(job_id)],
        }

    @bp.get("/throughput")
    def throughput() -> ResponseReturnValue:
        """Jobs that ended completed and failed per bucket of time, zeros included."""
        unknown = sorted(set(request.args) - _THROUGHPUT_PARAMETERS)
        if unknown:
            abort(
                400,
                f"unknown query parameter(s) {unknown}; allowed: {sorted(_THROUGHPUT_PARAMETERS)}",
            )
        last = _seconds_arg("last", 3600.0)
        bucket = _bucket_arg()
        if last / bucket > 10_000:
            abort(400, f"last={last:g} s in buckets of {bucket} s is too many buckets (most 10000)")
        queue_name = request.args.get("queue") or None
        if queue_name is not None and "\x00" in queue_name:
            abort(400, "a queue name cannot contain a NUL character")
        points = state_for().queue.throughput(last=last, bucket=bucket, queue=queue_name)
        return {
            "last": last,
            "bucket": bucket,
            "queue": queue_name,
            "points": [asdict(point) for point in points],
        }


def _seconds_arg(name: str, default: float) -> float:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        abort(400, f"{name} must be a number of seconds, got {text[:50]!r}")
    if not (math.isfinite(value) and 0 < value <= KEEP_COUNTERS_SECONDS):
        abort(400, f"{name} must be more than 0 and at most {KEEP_COUNTERS_SECONDS} seconds")
    return value


def _bucket_arg() -> int:
    text = request.args.get("bucket", "60")
    if text not in {str(size) for size in BUCKET_SECONDS}:
        abort(400, f"bucket must be 60 or 3600 (seconds), got {text[:50]!r}")
    return int(text)
