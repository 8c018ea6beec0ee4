"""Clocks: where jobq reads the time and how it waits for time to pass.

Two kinds of time, two types, so that mypy keeps them apart:

- :class:`MonotonicClock` (also exported as :data:`Clock`): only differences
  between readings mean something. In-process rate limits, task timeouts and
  waits with a timeout take one; the default is :data:`SYSTEM_CLOCK`.
- :class:`EpochClock`: readings are seconds since the Unix epoch, so they can be
  stored and compared across processes: run-at times, leases, retention and
  schedules of :class:`jobq.DurableQueue` take one; the default is
  :data:`WALL_CLOCK`. A clock says it is one with ``epoch = True``; the
  monotonic :data:`SYSTEM_CLOCK` does not, so ``DurableQueue(clock=SYSTEM_CLOCK)``
  fails type checking.

An epoch clock serves where a monotonic one is asked for (its differences are
seconds too), not the other way round. :class:`jobq.testing.FakeClock` is both,
so tests drive time with it everywhere instead of sleeping.

Rule: a basic value; this module imports nothing from jobq.
"""

from __future__ import annotations

import threading
import time
from typing import Literal, Protocol, TypeAlias


class MonotonicClock(Protocol):
    """A clock whose readings only mean something as differences, and that can wait
    on a condition for some of its seconds."""

    def now(self) -> float:
        """Current time in seconds; only differences between readings are meaningful."""
        ...

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        """Wait on ``condition`` (held by the caller) until notified or ``timeout`` clock
        seconds pass. May return early; callers re-check what they wait for."""
        ...


Clock: TypeAlias = MonotonicClock
"""The name jobq has always exported for :class:`MonotonicClock`."""


class EpochClock(Protocol):
    """A wall clock: readings are seconds since the Unix epoch (UTC), fit to store in a
    database and compare across processes and hosts."""

    @property
    def epoch(self) -> Literal[True]:
        """Marks the clock's readings as epoch seconds; a monotonic clock has no such mark."""
        ...

    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        """Wait on ``condition`` (held by the caller) until notified or ``timeout`` clock
        seconds pass. May return early; callers re-check what they wait for."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic` and ordinary condition waits."""

    def now(self) -> float:
        """Seconds of :func:`time.monotonic`."""
        return time.monotonic()

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        """Wait on ``condition`` for up to ``timeout`` real seconds (None: until notified)."""
        condition.wait(timeout)


SYSTEM_CLOCK = SystemClock()
"""The shared real monotonic clock, the default for in-process limits and timeouts."""


class WallClock(SystemClock):
    """Real wall-clock time (:func:`time.time`), for times stored in a database and
    compared across processes: run-at times, leases, retention. An :class:`EpochClock`."""

    epoch: Literal[True] = True

    def now(self) -> float:
        """Seconds since the Unix epoch, from :func:`time.time`."""
        return time.time()


WALL_CLOCK = WallClock()
"""The shared real wall clock, the default clock of :class:`jobq.DurableQueue`."""
