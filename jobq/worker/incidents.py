"""Logging a failure that repeats (the database unreachable) once, not at every try.

A worker pool's dispatcher retries a failed database operation (claim, heartbeat,
lease rescue, recording outcomes) with a growing wait; an :class:`Incident` turns
those retries into three kinds of log lines: the first failure, with its
traceback; "still failing" at most every ``reminder`` seconds; "recovered" once.

Rule: imports the standard library and :mod:`jobq.defaults` only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .. import defaults

REMINDER_SECONDS = defaults.INCIDENT_REMINDER_SECONDS


class Incident:
    """One kind of failure that may repeat, logged on ``logger`` as ``what`` failing.

    :param reminder: seconds between "still failing" lines while it lasts
        (default 300: five minutes).
    :param clock: monotonic seconds (default :func:`time.monotonic`).
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        reminder: float = REMINDER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what
        self.reminder = reminder
        self.clock = clock
        self.failures = 0
        """Failures in a row (0 while all is well)."""
        self._began = 0.0
        self._told = 0.0

    def failed(self, exc: BaseException) -> None:
        """Another failure: logged at ERROR with its traceback if it begins the
        incident, at WARNING as "still failing" if ``reminder`` seconds passed since
        the last line, else not at all."""
        now = self.clock()
        self.failures += 1
        if self.failures == 1:
            self._began = self._told = now
            self.logger.error(
                "%s failed; retrying quietly until it works again",
                self.what,
                exc_info=exc,
                extra={"failures": 1, "failing_for": 0.0},
            )
        elif now - self._told >= self.reminder:
            self._told = now
            self.logger.warning(
                "%s still failing after %d tries in %.0f s: %s: %s",
                self.what,
                self.failures,
                now - self._began,
                type(exc).__qualname__,
                exc,
                extra={"failures": self.failures, "failing_for": now - self._began},
            )

    def succeeded(self) -> None:
        """It worked: logs "recovered" once if it had failed."""
        if self.failures:
            failing_for = self.clock() - self._began
            self.logger.warning(
                "%s recovered after %d failures in %.1f s",
                self.what,
                self.failures,
                failing_for,
                extra={"failures": self.failures, "failing_for": failing_for},
            )
            self.failures = 0
