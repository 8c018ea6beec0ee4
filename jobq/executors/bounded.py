"""BoundedExecutor: an in-memory executor with a concurrency limit, priorities and a rate limit.

This module is the public face of the in-memory tier: it checks settings, builds
the rate limiter and hands everything else to :class:`~jobq.executors.core.Core`.
Nothing here touches storage.

Rule: imports only basic values (``clock``, ``errors``, ``validate``), ``ratelimit``
and the executor core; never storage, the durable queue or anything above them.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from types import EllipsisType
from typing import Literal, ParamSpec, TypeVar

from ..clock import SYSTEM_CLOCK, MonotonicClock
from ..errors import ConfigurationError
from ..ratelimit import RateLimiter, SlidingWindowLimiter, TokenBucket
from ..validate import check_count, check_positive_number, check_priority, check_seconds
from .core import Core

P = ParamSpec("P")
T = TypeVar("T")


def _default_max_workers() -> int:
    return min(32, (os.cpu_count() or 1) + 4)


def _make_limiter(
    rate: float | None, per: float, burst: int | None, strict: bool, clock: MonotonicClock
) -> RateLimiter | None:
    if rate is None:
        if strict or burst is not None:
            raise ConfigurationError("strict and burst only apply with a rate; pass rate=...")
        return None
    check_positive_number("rate", rate)
    check_seconds("per", per)
    if strict:
        if burst is not None:
            raise ConfigurationError(
                "burst does not apply to strict=True: a sliding window lets `rate` calls "
                "start at once and never more than that in any window of `per` seconds"
            )
        if float(rate) != int(rate):
            raise ValueError(f"strict=True needs a whole number of calls, got rate={rate!r}")
        return SlidingWindowLimiter(int(rate), per, clock=clock)
    return TokenBucket(rate, per, 1 if burst is None else burst, clock=clock)


class BoundedExecutor(Executor):
    """A thread-based :class:`~concurrent.futures.Executor` with limits: how many tasks run
    at once, how often they may start, and how many may wait.

    Use it wherever an executor is accepted (``submit``, ``map``,
    :func:`concurrent.futures.wait`, :func:`~concurrent.futures.as_completed`)::

        with BoundedExecutor(max_workers=3, rate=10, per=60) as pool:
            futures = [pool.submit(call_api, item) for item in items]

    **Concurrency.** At most ``max_workers`` tasks run at once. Threads are
    started when work arrives and reused; a Python thread cannot be killed, so a
    task that outlives its timeout keeps its thread, and its slot stays taken
    until the function really returns: ``max_workers`` is a true bound on the
    functions running at the same time.

    **Rate limit.** With ``rate`` set, a :class:`~jobq.TokenBucket` of ``rate``
    starts per ``per`` seconds and capacity ``burst`` governs when a task may
    *start*: in any interval of T seconds at most ``burst + rate * T / per``
    tasks start (with the default ``burst=1``, never more than ``rate`` in any
    window of ``per`` seconds, evenly spaced). With ``strict=True`` a
    :class:`~jobq.SlidingWindowLimiter` lets up to ``rate`` start at once and
    never more than ``rate`` in any window of ``per`` seconds, which is what
    "N requests per minute" means to an API provider. Or pass any limiter as
    ``limiter=``, for example one shared by two executors. A provider counts
    requests when they *arrive*, a little after they start and not always
    equally late: against a hard limit, pad the window by the spread of your
    network latency (``per=60.5`` for "60 a minute").

    **Priority and timeout** are set per task without touching the function's
    own arguments: ``pool.options(priority=5, timeout=30).submit(fn, *args)``.
    Higher priority starts first; equal priorities start in submission order.

    :param max_workers: tasks running at once, >= 1. Default: ``min(32, cpus + 4)``,
        as ``ThreadPoolExecutor``.
    :param rate: starts allowed per ``per`` seconds, finite and > 0. Default: no rate limit.
    :param per: the rate's period in seconds, finite and > 0. Default 1.0.
    :param burst: token-bucket capacity, an integer >= 1. Default 1.
    :param strict: use a strict sliding window of ``rate`` starts per ``per`` seconds.
    :param limiter: a ready-made :class:`~jobq.RateLimiter`; excludes ``rate``.
    :param timeout: default per-task timeout in seconds, counted from the task's
        start; its future then fails with :class:`~jobq.TaskTimeout` (a
        ``TimeoutError``). Default: none.
    :param max_queued: most tasks allowed to wait, >= 1. Default: unbounded.
    :param when_full: what ``submit`` does when ``max_queued`` tasks wait:
        ``"block"`` (default) until there is room, or ``"raise"``
        :class:`~jobq.QueueFull`. A task that submits to its own full executor
        with ``"block"`` can deadlock it.
    :param name: used in thread names and ``repr``.
    :param clock: where time is read, a :class:`~jobq.clock.MonotonicClock` (only
        differences count). Default: :data:`~jobq.SYSTEM_CLOCK`; tests pass
        :class:`jobq.testing.FakeClock`.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        rate: float | None = None,
        per: float = 1.0,
        burst: int | None = None,
        strict: bool = False,
        limiter: RateLimiter | None = None,
        timeout: float | None = None,
        max_queued: int | None = None,
        when_full: Literal["block", "raise"] = "block",
        name: str | None = None,
        clock: MonotonicClock = SYSTEM_CLOCK,
    ) -> None:
        if max_workers is None:
            max_workers = _default_max_workers()
        check_count("max_workers", max_workers)
        if max_queued is not None:
            check_count("max_queued", max_queued)
        if timeout is not None:
            check_seconds("timeout", timeout)
        if when_full not in ("block", "raise"):
            raise ValueError(f"when_full must be 'block' or 'raise', got {when_full!r}")
        if limiter is not None and (rate is not None or strict or burst is not None):
            raise ConfigurationError("pass either limiter= or rate= (with per/burst/strict)")
        if limiter is None:
            limiter = _make_limiter(rate, per, burst, strict, clock)
        self._name = name or f"BoundedExecutor-{id(self):x}"
        self._core = Core(
            max_workers,
            limiter,
            timeout,
            max_queued,
            when_full,
            clock,
            thread_name_prefix=f"jobq-{name}" if name else "jobq-executor",
        )
        self._core.owner = weakref.ref(self)
        weakref.finalize(self, self._core.begin_shutdown)

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)`` at priority 0 with the executor's timeout.

        Returns a :class:`~concurrent.futures.Future`. Raises RuntimeError after
        :meth:`shutdown`, and :class:`~jobq.QueueFull` when ``max_queued`` is
        reached with ``when_full="raise"``.
        """
        core = self._core
        return core.submit(fn, args, kwargs, 0, core.timeout)

    def options(
        self, *, priority: int = 0, timeout: float | EllipsisType | None = ...
    ) -> TaskOptions:
        """Return an executor that submits to this one with a priority and a timeout.

        ``priority``: higher starts first, any integer, default 0. ``timeout``:
        seconds from the task's start, None for no timeout; omitted, the
        executor's own. Nothing is stored on the function or its arguments::

            urgent = pool.options(priority=10, timeout=5)
            urgent.submit(fetch, url)
            results = urgent.map(fetch, urls)
        """
        check_priority(priority)
        if timeout is ...:
            timeout = self._core.timeout
        elif timeout is not None:
            check_seconds("timeout", timeout)
        return TaskOptions(self, priority, timeout)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks, as :meth:`ThreadPoolExecutor.shutdown` does.

        Tasks already waiting still run (a paused executor is resumed so they
        can) unless ``cancel_futures`` is true, which cancels them. With
        ``wait``, return once every task has finished and every thread ended.
        """
        if cancel_futures:
            self.clear()
        self._core.begin_shutdown()
        if cancel_futures:
            self.clear()  # anything that slipped in before shutdown began
        if wait:
            self._core.join()

    # -- control ------------------------------------------------------------------

    def pause(self) -> None:
        """Start no new task until :meth:`resume`; running ones carry on."""
        self._core.set_paused(True)

    def resume(self) -> None:
        """Let waiting tasks start again after :meth:`pause`."""
        self._core.set_paused(False)

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._core.paused

    def clear(self) -> int:
        """Cancel every waiting task; their futures end cancelled. Returns how many."""
        return self._core.cancel_waiting()

    @property
    def waiting(self) -> int:
        """Tasks submitted and not yet started."""
        return self._core.waiting

    @property
    def running(self) -> int:
        """Tasks started and not yet over, including ones past their timeout. A task's
        future is resolved just before it stops counting here, so after
        :meth:`wait_idle` every future is resolved."""
        return self._core.running

    @property
    def name(self) -> str:
        """The name given to the constructor, or one made from the object's id."""
        return self._name

    @property
    def is_shutdown(self) -> bool:
        """True once :meth:`shutdown` was called (or the executor was collected)."""
        return self._core.shut_down

    @property
    def max_workers(self) -> int:
        """Tasks allowed to run at once. Assign to change it while in use: more workers
        start at once; surplus ones leave when their current task ends."""
        return self._core.max_workers

    @max_workers.setter
    def max_workers(self, value: int) -> None:
        check_count("max_workers", value)
        self._core.set_max_workers(value)

    @property
    def limiter(self) -> RateLimiter | None:
        """The rate limiter deciding when tasks may start, or None."""
        return self._core.limiter

    def set_rate(
        self,
        rate: float | None,
        per: float = 1.0,
        *,
        burst: int | None = None,
        strict: bool = False,
    ) -> None:
        """Change the rate limit while in use; ``rate=None`` removes it.

        Arguments as in the constructor. A limiter of the same kind is
        reconfigured in place (also one passed as ``limiter=``), so starts
        already made still count.
        """
        core = self._core
        limiter = _make_limiter(rate, per, burst, strict, core.clock)
        current = core.limiter
        if isinstance(limiter, TokenBucket) and isinstance(current, TokenBucket):
            current.configure(limiter.rate, limiter.per, limiter.burst)
            limiter = current
        elif isinstance(limiter, SlidingWindowLimiter) and isinstance(
            current, SlidingWindowLimiter
        ):
            current.configure(limiter.limit, limiter.per)
            limiter = current
        core.set_limiter(limiter)

    # -- waiting ------------------------------------------------------------------

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no task waits and none runs. True if so, False on timeout.

        A paused executor with waiting tasks is not idle."""
        core = self._core
        return core.wait_until(lambda: not core.waiting and not core.running, timeout)

    def wait_empty(self, timeout: float | None = None) -> bool:
        """Block until no task is waiting to start (some may still run)."""
        core = self._core
        return core.wait_until(lambda: not core.waiting, timeout)

    def wait_size_less_than(self, size: int, timeout: float | None = None) -> bool:
        """Block until fewer than ``size`` tasks are waiting: back-pressure for a producer."""
        core = self._core
        return core.wait_until(lambda: core.waiting < size, timeout)

    def __repr__(self) -> str:
        core = self._core
        return (
            f"<BoundedExecutor {self._name} max_workers={core.max_workers} "
            f"limiter={core.limiter!r} running={core.running} waiting={core.waiting}"
            f"{' paused' if core.paused else ''}{' shut down' if core.shut_down else ''}>"
        )


class TaskOptions(Executor):
    """Submits to a :class:`BoundedExecutor` with a fixed priority and timeout.

    Made by :meth:`BoundedExecutor.options`. It is an Executor too, so it can be
    handed to code that takes one. Its :meth:`shutdown` does nothing: shut down
    the executor it came from.
    """

    def __init__(self, executor: BoundedExecutor, priority: int, timeout: float | None) -> None:
        self.executor = executor
        self.priority = priority
        self.timeout = timeout

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)`` with these options."""
        return self.executor._core.submit(fn, args, kwargs, self.priority, self.timeout)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Does nothing; options do not own the executor's threads."""

    def __repr__(self) -> str:
        return f"<TaskOptions priority={self.priority} timeout={self.timeout} of {self.executor!r}>"
