"""One path for every job: claim it, run an attempt, record the outcome.

The worker pool and the inline runner (``DurableQueue.run_until_empty``) both
claim through :func:`claim`, run through :func:`run_attempt` and record through
:func:`record`; this module alone says how a job is claimed, what an attempt
came to (:class:`Outcome`) and how that is stored and announced.

Rule: imports basic values, storage, signals and the job context; never
the pool or :mod:`jobq.queue` (the queue is a :class:`~jobq.worker.host.QueueHost`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from .. import codec, defaults, signals, tracing_hooks
from ..chains import result_argument
from ..context import JobContext, _set_current
from ..errors import Fail, PayloadError, Retry, TransientError, UnknownTask
from ..job import Job, JobError, JobStatus
from ..storage.base import Completion
from .failures import argument_error, describe, error_of, retry_delay, storable
from .host import Leased, QueueHost, RunnableTask
from .logs import (
    completion_logged,
    log_again,
    log_cancelled,
    log_completed,
    log_failed,
    log_started,
)

logger = logging.getLogger("jobq.worker")

UNKNOWN_TASK_WAIT = defaults.UNKNOWN_TASK_WAIT


@dataclass
class Outcome:
    """What an attempt came to. ``delay`` is seconds before the next attempt for
    ``failed`` (None: no retry) and ``snoozed`` (a ``Retry`` raised by the task);
    ``exception`` what ended it (with its traceback when raised), ``duration``
    the seconds it ran (set by :func:`run_attempt`)."""

    kind: Literal["completed", "failed", "snoozed", "cancelled"]
    result: str | None = None
    error: JobError | None = None
    delay: float | None = None
    exception: BaseException | None = None
    duration: float = 0.0


L = TypeVar("L", bound=Leased)
Runner = Callable[[QueueHost, Job, JobContext], Outcome]
"""What runs an attempt and says how it went, never raising: :func:`execute`."""


def claim(
    host: QueueHost,
    queues: Collection[str],
    *,
    owner: str,
    now: float,
    limit: int,
    limited_at_most: int | None = None,
) -> list[Job]:
    """Lease up to ``limit`` due jobs of ``queues`` to ``owner`` for the host's
    ``lease_seconds``. With ``limited_at_most``, the registered tasks' limits
    (concurrency, rate) are enforced and at most that many of the jobs claimed
    are of limited tasks; without it (the inline runner), the limits are not applied."""
    limits = host.task_limits if limited_at_most is not None else None
    if limits:
        return host.storage.claim(
            queues,
            owner=owner,
            now=now,
            lease_seconds=host.lease_seconds,
            limit=limit,
            limits=limits,
            limited_at_most=limited_at_most,
        )
    return host.storage.claim(
        queues, owner=owner, now=now, lease_seconds=host.lease_seconds, limit=limit
    )


def new_context(host: QueueHost, job: Job) -> JobContext:
    """The context a claimed job's task sees as ``jobq.current_job()``."""

    def report(progress: str) -> bool:
        assert job.lease_token is not None
        return host.storage.set_progress(job.id, job.lease_token, progress, now=host.clock.now())

    return JobContext(job, report, host)


def run_attempt(host: QueueHost, context: JobContext, run: Runner | None = None) -> Outcome:
    """Announce ``job_started`` (a receiver's exception other than ``Exception``
    propagates), then run the attempt, timed: with ``run`` (a process-isolated
    attempt: :meth:`jobq.worker.isolation.Children.execute`), else :func:`execute`."""
    log_started(context.job)
    if signals.job_started.receivers:
        signals.emit(signals.job_started, host, job=context.job)
    began = time.perf_counter()
    outcome = (run or execute)(host, context.job, context)
    outcome.duration = time.perf_counter() - began
    return outcome


def execute(host: QueueHost, job: Job, context: JobContext) -> Outcome:
    """Run one attempt of ``job`` in this thread and say how it went. Never raises.

    Whatever the task does ends the attempt with a readable reason: an exception
    of any kind (``SystemExit`` and ``KeyboardInterrupt`` too: in a worker thread
    they end the attempt, not the process), one whose ``str()`` raises, a result
    JSON cannot hold (including one nested too deeply or containing itself), or a
    backoff that raises (the job then fails without a retry).
    """
    task = host.tasks.get(job.name)
    if task is None:
        unknown = UnknownTask(job.name, list(host.tasks))
        error = error_of(unknown)
        if host.unknown_tasks == "wait":
            logger.warning(
                "jobq: job %d: %s; trying again in %g s", job.id, error.message, UNKNOWN_TASK_WAIT
            )
            return Outcome("snoozed", error=error, delay=UNKNOWN_TASK_WAIT, exception=unknown)
        return Outcome("failed", error=error, exception=unknown)
    try:
        payload = json.loads(job.payload)
        args, kwargs = payload["args"], payload["kwargs"]
        if job.result_from is not None:  # a chain step: the result of the one before first
            args = [result_argument(job.parent_result), *args]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        message = f"the stored arguments of job {job.id} cannot be read: {describe(exc)}"
        error = JobError("PayloadError", storable(message))
        return Outcome("failed", error=error, exception=exc)
    _set_current(context)
    tracer = tracing_hooks.active
    try:
        if tracer is None:
            result = _call(task, args, kwargs, host.around_job)
        else:
            result = tracer.run(job, payload, lambda: _call(task, args, kwargs, host.around_job))
    except Retry as exc:
        if exc.delay is not None:
            return Outcome("snoozed", error=error_of(exc), delay=exc.delay, exception=exc)
        return failure(task, job, exc, snooze=True)
    except Fail as exc:
        return Outcome("failed", error=error_of(exc), exception=exc)
    except BaseException as exc:  # a task must never take its worker down
        if type(exc) is TypeError and (mismatch := argument_error(job.name, task.fn, args, kwargs)):
            return Outcome("failed", error=mismatch, exception=exc)
        retry_after = exc.retry_after if isinstance(exc, TransientError) else None
        return failure(task, job, exc, retry_after=retry_after)
    finally:
        _set_current(None)
    if context.cancel_requested:
        return Outcome("cancelled")
    return _completion(job, result)


def _call(
    task: RunnableTask,
    args: Any,
    kwargs: Any,
    around_job: Callable[[Callable[[], Any]], Any] | None,
) -> Any:
    if around_job is None:
        return task.fn(*args, **kwargs)
    return around_job(lambda: task.fn(*args, **kwargs))


def failure(
    task: RunnableTask,
    job: Job,
    exception: BaseException,
    *,
    error: JobError | None = None,
    retry_after: float | None = None,
    snooze: bool = False,
) -> Outcome:
    """An attempt that ``exception`` ended (recorded as ``error``, by default
    :func:`error_of` it), to run again after the task's backoff (or ``retry_after``)
    while attempts remain, unless the task's retry rules (``retry_on``,
    ``discard_on``) say otherwise; ``snooze``: a ``Retry`` without a delay, not counted."""
    if error is None:
        error = error_of(exception)
    rules, decision = task.retry_rules, None
    if rules is not None and not snooze:
        decision = rules.decide(exception, attempts=job.attempts, max_attempts=job.max_attempts)
    if decision is not None:
        error = JobError(error.type, storable(f"{error.message}; {decision.note}"), error.traceback)
        if not decision.retry:
            return Outcome("failed", error=error, exception=exception)
    elif not snooze and job.attempts >= job.max_attempts:
        return Outcome("failed", error=error, exception=exception)
    if retry_after is not None:
        return Outcome("failed", error=error, delay=retry_after, exception=exception)
    backoff = task.backoff if decision is None or decision.backoff is None else decision.backoff
    delay, why_not = retry_delay(backoff, job.attempts)
    if delay is None:
        error = JobError(error.type, storable(f"{error.message}; {why_not}"), error.traceback)
        return Outcome("failed", error=error, exception=exception)
    return Outcome("snoozed" if snooze else "failed", error=error, delay=delay, exception=exception)


def _completion(job: Job, result: object) -> Outcome:
    if result is None:  # most tasks return nothing: skip the encoder
        return Outcome("completed", result="null")
    what = f"result of {job.name}"
    try:
        text = codec.encode(result, name=what)
    except PayloadError as exc:  # names what JSON or UTF-8 cannot hold, and where
        return Outcome("failed", error=error_of(exc), exception=exc)
    except Exception as exc:  # whatever encoding a strange object raises
        return _unstorable(exc, f"the {what} cannot be stored as JSON")
    return Outcome("completed", result=text)


def _unstorable(exc: Exception, reason: str) -> Outcome:
    error = error_of(exc, context=reason)
    error = JobError("PayloadError", error.message, error.traceback)
    return Outcome("failed", error=error, exception=exc)


def record(host: QueueHost, outcomes: list[tuple[L, Outcome]], now: float) -> None:
    """Record each outcome under its job's lease and announce it: completions in
    one transaction, then the others one by one (:func:`apply`). Removes from
    ``outcomes`` what it recorded, so after an error the list holds what is left."""
    completed: list[tuple[Job, Outcome]] = []
    others: list[tuple[L, Outcome]] = []
    for held, outcome in outcomes:
        if outcome.kind == "completed":
            completed.append((held.job, outcome))
        else:
            others.append((held, outcome))
    if completed:
        done = host.storage.complete_many(
            [Completion(j.id, j.lease_token or "", o.result) for j, o in completed], now=now
        )
        announce = _announce_completed if _completions_heard(host) else None
        for (job, outcome), ok in zip(completed, done, strict=False):
            if ok and announce is not None:
                announce(host, job, outcome)
        outcomes[:] = others
    while outcomes:
        held, outcome = outcomes[0]
        apply(host, held.job, outcome, now)
        del outcomes[0]


def apply(host: QueueHost, job: Job, outcome: Outcome, now: float) -> JobStatus | None:
    """Record one outcome under the job's lease and announce it; return the job's
    new status, or None if the lease was no longer held."""
    storage, token = host.storage, job.lease_token
    assert token is not None
    if outcome.kind == "completed":
        done = storage.complete(job.id, token, now=now, result=outcome.result)
        status = JobStatus.COMPLETED if done else None
    elif outcome.kind == "cancelled":
        status = JobStatus.CANCELLED if storage.finish_cancelled(job.id, token, now=now) else None
    elif outcome.kind == "snoozed":
        assert outcome.delay is not None
        status = storage.release(job.id, token, now=now, run_at=now + outcome.delay)
    else:
        assert outcome.error is not None
        retry_at = None if outcome.delay is None else now + outcome.delay
        status = storage.fail(job.id, token, outcome.error, now=now, retry_at=retry_at)
    if status is not None:
        _announce(host, job, outcome, status, now)
    return status


def _completions_heard(host: QueueHost) -> bool:
    """Whether anyone hears of completed jobs: a DEBUG log or a ``job_succeeded``
    receiver (asked once per batch rather than for every job)."""
    return bool(signals.job_succeeded.receivers) or completion_logged()


def _announce_completed(host: QueueHost, job: Job, outcome: Outcome) -> None:
    log_completed(job, outcome.duration)
    if signals.job_succeeded.receivers:
        result = None if outcome.result is None else json.loads(outcome.result)
        signals.emit(signals.job_succeeded, host, job=job, result=result)


def _announce(host: QueueHost, job: Job, outcome: Outcome, status: JobStatus, now: float) -> None:
    """Log the recorded outcome (:mod:`jobq.worker.logs`) and send its signal."""
    duration = outcome.duration
    if status is JobStatus.COMPLETED:
        _announce_completed(host, job, outcome)
        return
    error, exception = outcome.error, outcome.exception
    if status is JobStatus.FAILED:
        log_failed(job, error, exception, duration=duration)
        if signals.job_failed.receivers:
            signals.emit(
                signals.job_failed,
                host,
                job=job,
                error=error,
                exception=exception,
                duration=duration,
            )
    elif status is JobStatus.CANCELLED:
        log_cancelled(job, duration)
        if signals.job_cancelled.receivers:
            signals.emit(signals.job_cancelled, host, job=job)
    else:
        delay = outcome.delay or 0.0
        counted = outcome.kind == "failed"
        log_again(
            job,
            error,
            exception,
            duration=duration,
            retry_at=now + delay,
            retry_in=delay,
            counted=counted,
        )
        if signals.job_retrying.receivers:
            signals.emit(
                signals.job_retrying,
                host,
                job=job,
                error=error,
                run_at=now + delay,
                exception=exception,
                duration=duration,
            )
