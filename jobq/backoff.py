"""Retry delays: how long a failed job waits before its next attempt.

A backoff is any callable taking the number of the attempt that just failed
(1 for the first) and returning seconds to wait. ``fixed`` and ``exponential``
build the usual ones; randomness is injectable so tests are deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Callable

Backoff = Callable[[int], float]
"""``backoff(attempt) -> seconds``: ``attempt`` is 1 after the first failure."""


def fixed(seconds: float) -> Backoff:
    """Always wait ``seconds`` (>= 0) before retrying."""
    if not seconds >= 0:
        raise ValueError(f"a backoff delay must be at least 0 seconds, got {seconds!r}")

    def delay(attempt: int) -> float:
        return seconds

    return delay


def exponential(
    base: float = 2.0,
    factor: float = 2.0,
    cap: float = 3600.0,
    *,
    jitter: bool = True,
    rng: Callable[[], float] = random.random,
) -> Backoff:
    """Wait ``base * factor ** (attempt - 1)`` seconds, at most ``cap``.

    With ``jitter`` (the default) each delay is drawn uniformly between half
    and all of that, so jobs that failed together do not retry together.
    Defaults: 2 s, then 4 s, 8 s, ... up to one hour. ``rng`` returns a float in
    [0, 1); pass your own for deterministic tests.
    """
    if not base > 0:
        raise ValueError(f"base must be greater than 0 seconds, got {base!r}")
    if not factor >= 1:
        raise ValueError(f"factor must be at least 1, got {factor!r}")
    if not cap >= base:
        raise ValueError(f"cap must be at least base ({base!r}), got {cap!r}")

    def delay(attempt: int) -> float:
        try:
            seconds = min(cap, base * factor ** max(attempt - 1, 0))
        except OverflowError:  # a very late attempt; the cap applies anyway
            seconds = cap
        if jitter:
            seconds *= 0.5 + rng() / 2
        return seconds

    return delay


def resolve(backoff: float | Backoff | None) -> Backoff:
    """Turn a task's ``backoff=`` setting into a callable: None is the default
    exponential backoff, a number is a fixed delay in seconds."""
    if backoff is None:
        return exponential()
    if isinstance(backoff, (int, float)) and not isinstance(backoff, bool):
        return fixed(float(backoff))
    if callable(backoff):
        return backoff
    raise TypeError(
        f"backoff must be seconds, a callable taking the attempt number, or None; got {backoff!r}"
    )
