"""Blinker signals for what jobq does, so applications can log, count or react.

Connect a receiver like any blinker signal; the sender is the object that
emits (for executor signals, the :class:`jobq.BoundedExecutor`)::

    from jobq import signals

    @signals.task_failed.connect
    def log_failure(executor, *, future, fn, exception):
        log.warning("%s failed: %r", fn.__name__, exception)

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
    "task-started",
    doc="A task began running. Keywords: ``future``, ``fn``.",
)
task_succeeded = namespace.signal(
    "task-succeeded",
    doc="A task returned. Keywords: ``future``, ``fn``, ``result``.",
)
task_failed = namespace.signal(
    "task-failed",
    doc="A task raised or timed out. Keywords: ``future``, ``fn``, ``exception``.",
)
executor_idle = namespace.signal(
    "executor-idle",
    doc="An executor has no task waiting and none running. No keywords.",
)


def emit(signal: NamedSignal, sender: object, **kwargs: Any) -> None:
    """Send ``signal`` to each receiver in turn, logging (not raising) their errors."""
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **kwargs)
        except Exception:
            logger.exception("receiver %r of signal %r raised", receiver, signal.name)
