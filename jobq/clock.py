"""Clocks: where jobq reads the time and how it waits for time to pass.

Everything in jobq that depends on elapsed time (rate limits, task timeouts,
waits with a timeout) reads it from a :class:`Clock` given to its constructor,
so tests can drive time with :class:`jobq.testing.FakeClock` instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """A monotonic clock that can also wait on a condition for some of its seconds."""

    def now(self) -> float:
        """Current time in seconds; only differences between readings are meaningful."""
        ...

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        """Wait on ``condition`` (held by the caller) until notified or ``timeout`` clock
        seconds pass. May return early; callers re-check what they wait for."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic` and ordinary condition waits."""

    def now(self) -> float:
        return time.monotonic()

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        condition.wait(timeout)


SYSTEM_CLOCK = SystemClock()
"""The shared real monotonic clock, the default for in-process limits and timeouts."""


class WallClock(SystemClock):
    """Real wall-clock time (:func:`time.time`), for times stored in a database and
    compared across processes: run-at times, leases, retention."""

    def now(self) -> float:
        return time.time()


WALL_CLOCK = WallClock()
"""The shared real wall clock, the default clock of :class:`jobq.DurableQueue`."""
