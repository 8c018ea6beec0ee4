"""Running durable jobs: the worker pool, the inline runner, and their upkeep.

- :mod:`~jobq.worker.pool`: :class:`WorkerPool`, threads and a dispatcher.
- :mod:`~jobq.worker.execute`: claim a job, run an attempt, record its outcome.
- :mod:`~jobq.worker.inline`: :func:`run_inline` (``DurableQueue.run_until_empty``).
- :mod:`~jobq.worker.services`: lease rescue, retention, schedules, heartbeats.
- :mod:`~jobq.worker.host`: :class:`QueueHost`, what the worker needs of the queue.
- :mod:`~jobq.worker.failures`: failures described in words every backend stores.
- :mod:`~jobq.worker.logs`: each attempt's log line on ``jobq.jobs``, with the job's fields.
- :mod:`~jobq.worker.incidents`: a repeating failure (an outage) logged once, not per try.

Rule: the worker sits below :mod:`jobq.queue` and never imports it; the queue
reaches the worker through :class:`QueueHost`, which it satisfies structurally.
"""

from __future__ import annotations

from .. import defaults
from .execute import Outcome as Outcome
from .execute import apply as apply
from .execute import execute as execute
from .host import QueueHost as QueueHost
from .inline import run_inline as run_inline
from .pool import WorkerPool as WorkerPool

# Kept importable from here, where they used to be defined.
UNKNOWN_TASK_WAIT = defaults.UNKNOWN_TASK_WAIT
SCHEDULE_CHECK_INTERVAL = defaults.SCHEDULE_CHECK_INTERVAL
NOTIFIED_POLL_INTERVAL = defaults.NOTIFIED_POLL_INTERVAL

__all__ = ["Outcome", "QueueHost", "WorkerPool", "apply", "execute", "run_inline"]
