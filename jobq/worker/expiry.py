"""The expiry sweep of a worker pool: ends the pending jobs past their ``expires_at``.

Claims already pass over such jobs; the sweep makes them end (``cancelled``, error
``Expired``) so that stats, the dashboard and the command line show them ended,
also in a paused queue or one that no pool serves. See :mod:`jobq.expiry`.

Rule: imports basic values, storage and signals; never the pool or :mod:`jobq.queue`.
"""

from __future__ import annotations

import logging

from .. import defaults, signals
from .services import Service

logger = logging.getLogger("jobq.worker")

SWEEP_BATCH = 1000
"""Jobs ended per storage call; a run calls again while a batch comes back full."""


class ExpirySweeper(Service):
    """Ends the pending jobs whose ``expires_at`` has passed, every
    :data:`~jobq.defaults.EXPIRY_CHECK_INTERVAL` seconds (1 s): a seek on an index
    holding only pending jobs that have an expiry, and no write when none has
    passed. Logs one INFO line on ``jobq.worker`` per run that ended jobs
    (``extra``: ``count`` and ``ids``) and sends ``job_expired`` with their ids."""

    @property
    def interval(self) -> float:
        return defaults.EXPIRY_CHECK_INTERVAL

    def run_once(self, now: float) -> list[int]:
        """Returns the ids of the jobs ended."""
        storage = self.host.storage
        ended: list[int] = []
        while True:
            batch = storage.expire_jobs(now=now, limit=SWEEP_BATCH)
            ended += batch
            if len(batch) < SWEEP_BATCH:
                break
        if ended:
            logger.info(
                "jobq: %d jobs expired before they started and were cancelled: %s",
                len(ended),
                ended[:20],
                extra={"count": len(ended), "ids": ended},
            )
            if signals.job_expired.receivers:
                signals.emit(signals.job_expired, self.host, ids=tuple(ended))
        return ended
