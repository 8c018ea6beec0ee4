"""Rate limiters: a token bucket and a strict sliding window.

Both are thread-safe, take an injectable :class:`~jobq.clock.MonotonicClock`, and can be
used on their own or given to :class:`jobq.BoundedExecutor` as ``limiter=``.
A limiter counts *starts*: one token is one call allowed to begin.

Rule: a limiter; this module imports only basic values (``clock``, ``validate``),
never the executor, storage or anything above them.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Protocol

from .clock import SYSTEM_CLOCK, MonotonicClock
from .validate import check_count, check_positive_number, check_seconds

# Float slack when comparing times and token counts: a caller that waits exactly
# the delay it was told must get its token, even if the arithmetic rounds down.
_EPSILON = 1e-9


class RateLimiter(Protocol):
    """What :class:`jobq.BoundedExecutor` needs from a rate limiter."""

    def reserve(self, tokens: int = 1) -> float:
        """Take ``tokens`` if they are available now and return ``0.0``; otherwise take
        nothing and return how many clock seconds to wait before trying again."""
        ...

    def try_acquire(self, tokens: int = 1) -> bool:
        """Take ``tokens`` if available now; never blocks."""
        ...

    def acquire(self, tokens: int = 1, timeout: float | None = None) -> bool:
        """Block until ``tokens`` are taken (True) or ``timeout`` seconds pass (False)."""
        ...


class _Limiter:
    """Blocking acquire on top of a subclass's ``_reserve(now, tokens)``."""

    _capacity: int

    def __init__(self, clock: MonotonicClock) -> None:
        self._clock = clock
        self._now = clock.now
        self._lock = threading.Lock()
        self._available = threading.Condition(self._lock)

    def _reserve(self, now: float, tokens: int) -> float:
        raise NotImplementedError

    def _check_tokens(self, tokens: int) -> None:
        if not 1 <= tokens <= self._capacity:
            raise ValueError(
                f"tokens must be between 1 and the limiter's capacity {self._capacity}, "
                f"got {tokens!r}; a request larger than the capacity could never be granted"
            )

    def reserve(self, tokens: int = 1) -> float:
        if tokens != 1:
            self._check_tokens(tokens)
        with self._lock:
            return self._reserve(self._now(), tokens)

    def try_acquire(self, tokens: int = 1) -> bool:
        """Take ``tokens`` (default 1) if available now and return True, else return False.

        Never blocks and never refuses while tokens are available, however many
        threads call it at once.
        """
        if tokens != 1:
            self._check_tokens(tokens)
        with self._lock:
            return self._reserve(self._now(), tokens) == 0.0

    def acquire(self, tokens: int = 1, timeout: float | None = None) -> bool:
        """Block until ``tokens`` (default 1) are taken and return True.

        ``timeout`` is in clock seconds; None (the default) waits as long as it
        takes. Returns False, having taken nothing, if the timeout passes first.
        Raises ValueError if ``tokens`` is above the limiter's capacity.
        """
        if tokens != 1:
            self._check_tokens(tokens)
        with self._lock:
            now = self._now()
            deadline = None if timeout is None else now + timeout
            while True:
                delay = self._reserve(now, tokens)
                if delay == 0.0:
                    return True
                if deadline is not None:
                    if now >= deadline:
                        return False
                    delay = min(delay, deadline - now)
                self._clock.wait(self._available, delay)
                now = self._now()


class TokenBucket(_Limiter):
    """A token bucket: ``rate`` tokens per ``per`` seconds, holding at most ``burst``.

    The bucket starts full. Each start takes one token; tokens come back
    continuously at ``rate / per`` per second up to ``burst``.

    **Guarantee**: in any interval of ``T`` seconds (both ends included) at most
    ``burst + rate * T / per`` tokens are granted. With the default ``burst=1``
    starts are spaced evenly and no half-open window of ``per`` seconds ever
    sees more than ``rate`` of them; a larger burst lets a quiet caller catch
    up, and then a window of ``per`` seconds may see up to ``burst + rate - 1``.
    For "never more than N in any window", with bursts allowed, use
    :class:`SlidingWindowLimiter`.

    :param rate: tokens added per ``per`` seconds; finite and > 0.
    :param per: length of the period in seconds. Default 1.0; finite and > 0.
    :param burst: capacity of the bucket, an integer >= 1. Default 1.
    :param clock: where time is read; default the system's monotonic clock.
    """

    def __init__(
        self, rate: float, per: float = 1.0, burst: int = 1, *, clock: MonotonicClock = SYSTEM_CLOCK
    ) -> None:
        super().__init__(clock)
        self._configure(rate, per, burst)
        self._tokens = float(burst)
        self._stamp = self._now()

    def _configure(self, rate: float, per: float, burst: int) -> None:
        check_positive_number("rate", rate)
        check_seconds("per", per)
        check_count("burst", burst)
        self.rate, self.per, self.burst = rate, per, burst
        self._capacity = burst
        self._fill = rate / per

    def configure(self, rate: float, per: float | None = None, burst: int | None = None) -> None:
        """Change the limit while in use. Tokens already earned are kept (up to the new
        burst); waiting callers see the new rate at once. Omitted values stay as they are."""
        with self._lock:
            self._refill(self._now())
            self._configure(
                rate, self.per if per is None else per, self.burst if burst is None else burst
            )
            self._tokens = min(self._tokens, float(self.burst))
            self._available.notify_all()

    def _refill(self, now: float) -> float:
        tokens = self._tokens
        if now > self._stamp:
            tokens += (now - self._stamp) * self._fill
            if tokens > self.burst:
                tokens = float(self.burst)
            self._tokens = tokens
            self._stamp = now
        return tokens

    def _reserve(self, now: float, tokens: int) -> float:
        available = self._refill(now)
        if available >= tokens - _EPSILON:
            self._tokens = max(available - tokens, 0.0)
            return 0.0
        return (tokens - available) / self._fill

    def try_acquire(self, tokens: int = 1) -> bool:
        # Inlined fast path of _reserve for the common single-token call.
        if tokens != 1:
            return super().try_acquire(tokens)
        with self._lock:
            now = self._now()
            available = self._tokens
            if now > self._stamp:
                available += (now - self._stamp) * self._fill
                if available > self.burst:
                    available = float(self.burst)
                self._stamp = now
            if available >= 1.0 - _EPSILON:
                self._tokens = max(available - 1.0, 0.0)
                return True
            self._tokens = available
            return False

    @property
    def tokens(self) -> float:
        """Tokens available right now (a snapshot)."""
        with self._lock:
            return self._refill(self._now())

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate!r}, per={self.per!r}, burst={self.burst!r})"


class SlidingWindowLimiter(_Limiter):
    """Strict limit: never more than ``limit`` starts in any window of ``per`` seconds.

    This is what an API provider means by "N requests per minute": unlike a
    fixed window, which lets ``2 * limit`` through around a window boundary, it
    remembers the time of each of the last ``limit`` starts and lets a new one
    begin only when the oldest is ``per`` seconds old. Windows are half-open:
    starts at ``t`` and ``t + per`` are in different windows. ``limit`` calls
    may start at once; memory is O(limit).

    :param limit: starts allowed per window, an integer >= 1.
    :param per: window length in seconds. Default 1.0; finite and > 0.
    :param clock: where time is read; default the system's monotonic clock.
    """

    def __init__(
        self, limit: int, per: float = 1.0, *, clock: MonotonicClock = SYSTEM_CLOCK
    ) -> None:
        super().__init__(clock)
        self._starts: deque[float] = deque()
        self._configure(limit, per)

    def _configure(self, limit: int, per: float) -> None:
        check_count("limit", limit)
        check_seconds("per", per)
        self.limit, self.per = limit, per
        self._capacity = limit

    def configure(self, limit: int, per: float | None = None) -> None:
        """Change the limit while in use. Starts already made still count in their window."""
        with self._lock:
            self._configure(limit, self.per if per is None else per)
            self._available.notify_all()

    def _reserve(self, now: float, tokens: int) -> float:
        starts = self._starts
        horizon = now - self.per + _EPSILON
        while starts and starts[0] <= horizon:
            starts.popleft()
        excess = len(starts) + tokens - self.limit
        if excess <= 0:
            starts.extend([now] * tokens)
            return 0.0
        # The window admits us once the `excess` oldest starts have aged out.
        return starts[excess - 1] - horizon + _EPSILON

    def __repr__(self) -> str:
        return f"SlidingWindowLimiter(limit={self.limit!r}, per={self.per!r})"
