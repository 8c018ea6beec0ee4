"""Job expiry: a job that has not started by its ``expires_at`` never runs.

Give it per enqueue, ``task.options(expires_in=3600).enqueue(...)`` (seconds after
the job is due: after the enqueue, or after its ``delay``/``run_at``, as Sidekiq
Pro counts it) or ``expires_at=`` (epoch seconds), also to ``enqueue_many`` and
``enqueue_by_name``. The rule is "no attempt starts after ``expires_at``":

- claims pass over a job past its expiry (:meth:`~jobq.storage.base.Storage.claim`);
- every worker pool ends such jobs about every second
  (:class:`~jobq.worker.services.ExpirySweeper` calling
  :meth:`~jobq.storage.base.Storage.expire_jobs`): ``cancelled``, with the error
  ``Expired: expired at <UTC time> before it started``, also in a paused queue;
- a job waiting for a retry past its expiry ends the same way (``before attempt
  2 started``), as Celery's ``expires`` does for retries;
- a job already running when its expiry passes runs to its end;
- a manual retry of an expired job (``queue.retry(id)``) drops its expiry.

Rule: imports basic values and the storage contract's values only.
"""

from __future__ import annotations

import math

from .storage.records import NewJob
from .validate import is_number


def check_expiry_options(expires_in: object, expires_at: object, run_at: float | None) -> None:
    """Raise ValueError, naming the option, for an expiry that is not a finite number
    (``expires_in`` > 0), for both given, or for an ``expires_at`` not after the
    ``run_at`` given (the job could never run)."""
    if expires_in is not None and expires_at is not None:
        raise ValueError("give either expires_in= or expires_at=, not both")
    if expires_in is not None and not (
        is_number(expires_in) and 0 < expires_in < math.inf  # type: ignore[operator]
    ):
        raise ValueError(f"expires_in must be seconds > 0, got {expires_in!r}")
    if expires_at is None:
        return
    if not is_number(expires_at) or not math.isfinite(expires_at):  # type: ignore[arg-type]
        raise ValueError(
            f"expires_at must be finite epoch seconds (a float, as time.time() "
            f"returns; for a datetime pass .timestamp()), got {expires_at!r}"
        )
    if run_at is not None and run_at >= expires_at:  # type: ignore[operator]
        raise ValueError(
            f"expires_at={expires_at!r} is not after run_at={run_at!r}: the job could never run"
        )


def timed(job: NewJob, now: float, delay: float | None, expires_in: float | None) -> NewJob:
    """``job`` with its start (``now + delay``) and expiry (``expires_in`` after it
    is due: its ``run_at``, else ``now``) as times. Raises ValueError when it would
    expire before it may start, or already has: nothing is stored then."""
    if delay is not None:
        job = job._replace(run_at=now + delay)
    if expires_in is not None:
        due = now if job.run_at is None else job.run_at
        job = job._replace(expires_at=due + float(expires_in))
    if job.expires_at is not None:
        expires_at = float(job.expires_at)
        start = now if job.run_at is None else job.run_at
        if expires_at <= start:
            raise ValueError(
                f"{job.name}: expires_at={expires_at!r} is not after the job's earliest start "
                f"({start!r}): the job could never run; nothing was stored"
            )
        job = job._replace(expires_at=expires_at)
    return job
