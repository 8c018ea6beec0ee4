"""How long finished jobs are kept: the retention policy that worker pools apply.

Rule: a basic value; it imports only :mod:`jobq.defaults` and :mod:`jobq.job`.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import defaults
from .job import JobStatus


@dataclass(frozen=True)
class Retention:
    """How long finished jobs are kept, in seconds; None keeps them forever.

    Defaults: completed 7 days, failed 30 days, cancelled 7 days. Workers
    delete older ones every ``interval`` seconds (default 300).
    """

    completed: float | None = defaults.KEEP_COMPLETED_SECONDS
    failed: float | None = defaults.KEEP_FAILED_SECONDS
    cancelled: float | None = defaults.KEEP_CANCELLED_SECONDS
    interval: float = defaults.RETENTION_INTERVAL

    def ages(self) -> dict[JobStatus, float]:
        """Maximum age per final status, for the statuses that expire."""
        ages = {
            JobStatus.COMPLETED: self.completed,
            JobStatus.FAILED: self.failed,
            JobStatus.CANCELLED: self.cancelled,
        }
        return {status: age for status, age in ages.items() if age is not None}
