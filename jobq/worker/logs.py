"""The log line of each attempt, with the job's fields in ``extra``.

Every attempt's end is logged on the ``jobq.jobs`` logger by the worker that
records it (a pool's dispatcher thread, or the caller of ``run_until_empty``):

- DEBUG ``job 7 send_mail started (attempt 1/3)`` and ``job 7 send_mail completed``;
- INFO when a job was cancelled, or asked to run again later (``jobq.Retry``);
- WARNING when an attempt failed and the job will run again;
- ERROR when the job failed for good, with ``exc_info`` holding the exception
  (the task's own, with its traceback; :class:`jobq.TaskTimeout`,
  :class:`jobq.WorkerStopped` or :class:`jobq.UnknownTask` otherwise).

Each record carries in ``extra`` (so as attributes of the record): ``job_id``,
``task``, ``queue``, ``attempt``, ``max_attempts``, ``duration`` (seconds the
attempt ran) and, for a job that will run again, ``retry_at`` (epoch seconds)
and ``retry_in`` (seconds from now).

Rule: imports basic values only.
"""

from __future__ import annotations

import logging
from typing import Any

from ..job import Job, JobError

JOBS_LOGGER = "jobq.jobs"
"""The name of the logger of jobs' attempts."""

logger = logging.getLogger(JOBS_LOGGER)

_REASON_LIMIT = 500  # characters of an error's message in a log line


def job_fields(job: Job, duration: float | None) -> dict[str, Any]:
    """The ``extra`` fields of a record about ``job``'s current attempt."""
    return {
        "job_id": job.id,
        "task": job.name,
        "queue": job.queue,
        "attempt": job.attempts,
        "max_attempts": job.max_attempts,
        "duration": duration,
    }


def log_started(job: Job) -> None:
    """DEBUG: an attempt of ``job`` begins."""
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "job %d %s started (attempt %d/%d)",
            job.id,
            job.name,
            job.attempts,
            job.max_attempts,
            extra=job_fields(job, None),
        )


def completion_logged() -> bool:
    """Whether :func:`log_completed` writes anything (``jobq.worker`` at DEBUG)."""
    return logger.isEnabledFor(logging.DEBUG)


def log_completed(job: Job, duration: float) -> None:
    """DEBUG: ``job`` completed after ``duration`` seconds."""
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "job %d %s completed in %.3f s",
            job.id,
            job.name,
            duration,
            extra=job_fields(job, duration),
        )


def log_cancelled(job: Job, duration: float) -> None:
    """INFO: ``job`` stopped after a cancel request."""
    logger.info("job %d %s cancelled", job.id, job.name, extra=job_fields(job, duration))


def log_again(
    job: Job,
    error: JobError | None,
    exception: BaseException | None,
    *,
    duration: float,
    retry_at: float,
    retry_in: float,
    counted: bool,
) -> None:
    """WARNING (``counted``: a failed attempt) or INFO (a ``jobq.Retry`` that does
    not count): ``job`` runs again in ``retry_in`` seconds."""
    fields = job_fields(job, duration)
    fields["retry_at"] = retry_at
    fields["retry_in"] = retry_in
    logger.log(
        logging.WARNING if counted else logging.INFO,
        "job %d %s will retry: %s (attempt %d/%d; again in %.3g s)",
        job.id,
        job.name,
        _reason(error),
        job.attempts,
        job.max_attempts,
        retry_in,
        extra=fields,
    )


def log_failed(
    job: Job, error: JobError | None, exception: BaseException | None, *, duration: float
) -> None:
    """ERROR with ``exc_info=exception``: ``job`` failed for good."""
    logger.error(
        "job %d %s failed: %s (attempt %d/%d)",
        job.id,
        job.name,
        _reason(error),
        job.attempts,
        job.max_attempts,
        exc_info=exception,
        extra=job_fields(job, duration),
    )


def _reason(error: JobError | None) -> str:
    if error is None:
        return "no reason recorded"
    text = f"{error.type}: {error.message}" if error.message else error.type
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 3] + "..."
