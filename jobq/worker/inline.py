"""Running due jobs one by one in the calling thread (``DurableQueue.run_until_empty``).

The same claim, attempt and record steps as the pool (:mod:`jobq.worker.execute`),
without threads: for tests and scripts.

Rule: imports the worker's own modules and basic values; never :mod:`jobq.queue`.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Collection

from .execute import claim, new_context, record, run_attempt
from .host import QueueHost


def run_inline(host: QueueHost, *, queues: Collection[str] | None, max_jobs: int | None) -> int:
    """Claim and run due jobs one by one in this thread until none is due or
    ``max_jobs`` attempts ran; return how many ran. Expired leases are released
    first, each time (quietly: no log, no signal), and pending jobs past their
    expiry ended once at the start, as a pool does. Tasks' limits are not applied.
    See ``DurableQueue.run_until_empty``."""
    owner = f"inline:{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    names = list(queues) if queues is not None else host.queue_names()
    count = 0
    host.storage.expire_jobs(now=host.clock.now())
    while max_jobs is None or count < max_jobs:
        now = host.clock.now()
        host.storage.rescue_expired(now=now)
        jobs = claim(host, names, owner=owner, now=now, limit=1)
        if not jobs:
            break
        context = new_context(host, jobs[0])
        outcome = run_attempt(host, context)
        record(host, [(context, outcome)], host.clock.now())
        count += 1
    return count
