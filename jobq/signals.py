"""Blinker signals for what jobq does, so applications can log, count or react.

Connect a receiver like any blinker signal; the sender is the object that
emits: the :class:`jobq.BoundedExecutor` for ``task_*`` and
``executor_idle``, the :class:`jobq.DurableQueue` for ``job_*`` and
``worker_*``::

    from jobq import signals

    @signals.task_failed.connect
    def log_failure(executor, *, future, fn, exception):
        log.warning("%s failed: %r", fn.__name__, exception)

``exception`` of ``job_failed`` and ``job_retrying`` is the exception object
itself, with its ``__traceback__`` when the task raised it (so
``sentry_sdk.capture_exception(exception)`` or ``traceback.format_exception``
see the task's frames); for an attempt that did not raise it says what happened
instead: :class:`jobq.TaskTimeout` (past the task's ``timeout``),
:class:`jobq.WorkerStopped` (the pool stopped, its grace ran out),
:class:`jobq.UnknownTask`, or the error that kept the arguments from being read
or the result from being stored. Jobs whose lease expired (their worker died)
are announced by ``job_lease_expired`` only, with their ids.

Sending costs nearly nothing while no receiver is connected. A receiver that
raises is logged on the ``jobq.signals`` logger and never breaks the worker
that sent the signal, nor stops the other receivers.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal, Namespace

logger = logging.getLogger(__name__)

namespace = Namespace()
"""Every jobq signal lives in this namespace."""

task_started = namespace.signal(
    "task-started", doc="A task began running. Keywords: ``future``, ``fn``."
)
task_succeeded = namespace.signal(
    "task-succeeded", doc="A task returned. Keywords: ``future``, ``fn``, ``result``."
)
task_failed = namespace.signal(
    "task-failed", doc="A task raised or timed out. Keywords: ``future``, ``fn``, ``exception``."
)
executor_idle = namespace.signal(
    "executor-idle", doc="An executor has no task waiting and none running. No keywords."
)

job_enqueued = namespace.signal(
    "job-enqueued",
    doc="A new durable job was stored (not sent when an enqueue returned or replaced the "
    "live job holding its unique key). Sender: the DurableQueue. Keywords: ``job``.",
)
job_started = namespace.signal(
    "job-started",
    doc="A worker began an attempt. Keywords: ``job`` (with ``attempts`` counting this one).",
)
job_succeeded = namespace.signal(
    "job-succeeded", doc="A job completed. Keywords: ``job`` (as claimed), ``result`` (decoded)."
)
job_retrying = namespace.signal(
    "job-retrying",
    doc="An attempt failed (or raised ``jobq.Retry``) and the job will run again. Keywords: "
    "``job``, ``error`` (the stored ``jobq.JobError``), ``run_at`` (epoch seconds), "
    "``exception`` (what ended the attempt, see below), ``duration`` (seconds it ran).",
)
job_failed = namespace.signal(
    "job-failed",
    doc="A job failed for good (no attempts left, or Fail raised). Keywords: ``job``, "
    "``error`` (the stored ``jobq.JobError``), ``exception`` (what ended the attempt, "
    "see below), ``duration`` (seconds it ran).",
)
job_cancelled = namespace.signal(
    "job-cancelled", doc="A running job stopped after a cancel request. Keywords: ``job``."
)
job_lease_expired = namespace.signal(
    "job-lease-expired",
    doc="Jobs whose worker stopped renewing their lease were released. Keywords: "
    "``requeued``, ``failed``, ``cancelled`` (tuples of job ids).",
)
job_expired = namespace.signal(
    "job-expired",
    doc="Pending jobs passed their ``expires_at`` and ended cancelled (error ``Expired``). "
    "Keywords: ``ids`` (a tuple of job ids).",
)
worker_started = namespace.signal(
    "worker-started", doc="A worker pool started. Sender: the DurableQueue. Keywords: ``pool``."
)
worker_stopped = namespace.signal(
    "worker-stopped", doc="A worker pool stopped. Keywords: ``pool``."
)


def emit(signal: NamedSignal, sender: object, **kwargs: Any) -> None:
    """Send ``signal`` to each receiver in turn, logging (not raising) their errors."""
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **kwargs)
        except Exception:
            logger.exception("receiver %r of signal %r raised", receiver, signal.name)
