"""The upkeep services of one worker pool's dispatcher, built in the order it runs them.

Rule: imports basic values, storage and the services; never the pool or :mod:`jobq.queue`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from ..storage.base import RenewResult
from .expiry import ExpirySweeper
from .host import Leased, QueueHost
from .presence import PoolState, Presence, Running
from .services import (
    FIRST_PURGE_DELAY,
    HEARTBEATS_PER_LEASE,
    DeadPoolRescuer,
    Heartbeat,
    LeaseRescuer,
    RetentionCleaner,
    ScheduleFirer,
    Service,
    WalResetCheck,
)

L = TypeVar("L", bound=Leased)


def pool_services(
    queue: QueueHost,
    now: float,
    *,
    owner: str,
    name: str,
    queues: Sequence[str],
    state: PoolState,
    running: Running,
    held: Callable[[], Sequence[L]],
    on_news: Callable[[RenewResult, Sequence[L]], None],
    on_rescued: Callable[[], None],
) -> list[Service]:
    """The services of the pool ``owner`` started at ``now``: heartbeat (``held``
    leases, ``on_news`` of lost ones and cancels), the release of dead pools' jobs
    on this host and lease rescue (``on_rescued``), retention, schedules, expiry, the
    SQLite WAL-reset check, and its row in the registry of live pools (``name``,
    ``queues``, ``state``, the ``running`` threads), last so that a failure to
    write it never holds up the others."""
    return [
        Heartbeat(
            queue,
            next_run=now + queue.lease_seconds / HEARTBEATS_PER_LEASE,
            held=held,
            on_news=on_news,
        ),
        # Rescue what dead workers left before claiming, and fire (and first store)
        # the declared schedules at once.
        DeadPoolRescuer(queue, next_run=now, owner=owner, on_rescued=on_rescued),
        LeaseRescuer(queue, next_run=now, on_rescued=on_rescued),
        RetentionCleaner(queue, next_run=now + FIRST_PURGE_DELAY),
        ScheduleFirer(queue, next_run=now),
        ExpirySweeper(queue, next_run=now),
        WalResetCheck(queue, next_run=now),
        Presence(
            queue, next_run=now, owner=owner, name=name, queues=queues, state=state, running=running
        ),
    ]
