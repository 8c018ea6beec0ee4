"""BoundedExecutor: an in-memory executor with a concurrency limit, priorities and a rate limit.

This module is the in-memory tier: nothing here touches storage. Workers are
threads created on demand and reused; they take tasks from one priority heap
guarded by one lock, so a limit set on the executor holds for every thread
that submits to it. A task that may start the moment it is submitted (a free
slot, a token, nobody waiting) is started by ``submit`` itself and handed to a
worker, so a task submitted after it, whatever its priority, cannot overtake it.
"""

from __future__ import annotations

import atexit
import collections
import heapq
import itertools
import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future, InvalidStateError
from types import EllipsisType
from typing import Any, Literal, ParamSpec, TypeVar

from blinker import NamedSignal

from . import signals
from .clock import SYSTEM_CLOCK, Clock
from .errors import ConfigurationError, QueueFull, TaskTimeout
from .ratelimit import RateLimiter, SlidingWindowLimiter, TokenBucket
from .validate import check_count, check_positive_number, check_priority, check_seconds

P = ParamSpec("P")
T = TypeVar("T")

_QUEUED, _TAKEN, _REMOVED = 0, 1, 2

_live_cores: weakref.WeakSet[_Core] = weakref.WeakSet()


def _default_max_workers() -> int:
    return min(32, (os.cpu_count() or 1) + 4)


class _Task:
    __slots__ = ("args", "fn", "future", "kwargs", "state", "timeout")

    def __init__(
        self,
        future: _TaskFuture[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.timeout = timeout
        self.state = _QUEUED


_WENT_IDLE: _Task = object.__new__(_Task)  # a marker next_task() returns, never run


class _TaskFuture(Future[T]):
    """A Future that leaves its executor's waiting list as soon as it is cancelled."""

    _core: _Core | None = None
    _task: _Task | None = None

    def cancel(self) -> bool:
        if not super().cancel():
            return False
        core, task = self._core, self._task
        if core is not None and task is not None and core.discard(task):
            # Nobody will pop it now, so settle it here: wait() and as_completed()
            # count a cancelled future as done only once it is notified.
            self.set_running_or_notify_cancel()
        return True


class _Core:
    """The executor's shared state; worker threads hold this, never the executor itself,
    so an executor nobody references is collected and its threads wind down."""

    def __init__(
        self,
        max_workers: int,
        limiter: RateLimiter | None,
        timeout: float | None,
        max_queued: int | None,
        when_full: str,
        clock: Clock,
        thread_name_prefix: str,
    ) -> None:
        self.max_workers = max_workers
        self.limiter = limiter
        self.timeout = timeout
        self.max_queued = max_queued
        self.when_full = when_full
        self.clock = clock
        self.thread_name_prefix = thread_name_prefix
        self.owner: Callable[[], BoundedExecutor | None] = lambda: None

        self.lock = threading.Lock()
        self.work = threading.Condition(self.lock)  # workers wait here for tasks
        self.changed = threading.Condition(self.lock)  # wait_idle() and friends
        self.timer = threading.Condition(self.lock)  # the timeout watchdog

        self.heap: list[tuple[int, int, _Task]] = []
        self.sequence = itertools.count()
        self.waiting = 0
        # Tasks started by submit() (counted in `running`) that no worker has taken yet.
        self.started: collections.deque[_Task] = collections.deque()
        self.running = 0
        self.idle_workers = 0
        self.change_waiters = 0
        self.threads: set[threading.Thread] = set()
        self.thread_numbers = itertools.count(1)
        self.paused = False
        self.shut_down = False

        self.deadlines: list[tuple[float, int, _Task]] = []
        self.watchdog: threading.Thread | None = None

    # -- submitting ---------------------------------------------------------------

    def submit(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        priority: int,
        timeout: float | None,
    ) -> Future[T]:
        future: _TaskFuture[T] = _TaskFuture()
        task = _Task(future, fn, args, kwargs, timeout)
        future._core = self
        future._task = task
        with self.lock:
            if self.shut_down:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if (
                not self.waiting
                and self.running < self.max_workers
                and not self.paused
                and (self.limiter is None or self.limiter.reserve() == 0.0)
            ):
                # It may start now: start it here rather than leave it in the heap
                # for a worker, where a task submitted next with a higher
                # priority could be taken first.
                task.state = _TAKEN
                future._task = None
                future.set_running_or_notify_cancel()  # nobody can have cancelled it yet
                self.running += 1
                self.started.append(task)
            else:
                if self.max_queued is not None and self.waiting >= self.max_queued:
                    self._wait_for_room()
                heapq.heappush(self.heap, (-priority, next(self.sequence), task))
                self.waiting += 1
            if self.idle_workers:
                self.work.notify()
            self._spawn_if_needed()
        return future

    def _wait_for_room(self) -> None:
        assert self.max_queued is not None
        if self.when_full == "raise":
            raise QueueFull(self.max_queued)
        self.change_waiters += 1
        try:
            while self.waiting >= self.max_queued and not self.shut_down:
                self.changed.wait()
        finally:
            self.change_waiters -= 1
        if self.shut_down:
            raise RuntimeError("cannot schedule new futures after shutdown")

    def _spawn_if_needed(self) -> None:
        wanted = len(self.started) + (0 if self.paused else self.waiting)
        if wanted > self.idle_workers and len(self.threads) < self.max_workers:
            thread = threading.Thread(
                target=_work,
                args=(self,),
                name=f"{self.thread_name_prefix}-{next(self.thread_numbers)}",
                daemon=True,
            )
            self.threads.add(thread)
            thread.start()

    def _spawn_all_needed(self) -> None:
        count = len(self.threads)
        while True:
            self._spawn_if_needed()
            if len(self.threads) == count:
                return
            count = len(self.threads)

    def discard(self, task: _Task) -> bool:
        """Forget a cancelled task if it is still waiting; True if it was."""
        with self.lock:
            if task.state != _QUEUED:
                return False
            task.state = _REMOVED
            self.waiting -= 1
            self._compact_if_sparse()
            self._notify_change()
            return True

    def _compact_if_sparse(self) -> None:
        if len(self.heap) > 64 and len(self.heap) > 2 * self.waiting:
            self.heap = [entry for entry in self.heap if entry[2].state == _QUEUED]
            heapq.heapify(self.heap)

    def _notify_change(self) -> None:
        if self.change_waiters:
            self.changed.notify_all()

    # -- running ------------------------------------------------------------------

    def next_task(self, finished: bool) -> _Task | None:
        """Block until a task may start, and take it; None when this worker should exit,
        ``_WENT_IDLE`` when the task it just ``finished`` left the executor idle.

        Giving back the finished task here, in the same lock hold as taking the
        next one, halves the lock traffic per task: under contention that lock
        is most of an executor's overhead."""
        current = threading.current_thread()
        with self.lock:
            if finished:
                self.running -= 1
                self._notify_change()
                if not self.running and not self.waiting and signals.executor_idle.receivers:
                    return _WENT_IDLE
            while True:
                if len(self.threads) > self.max_workers:
                    break
                if self.started:  # already started (and counted) by submit()
                    return self.started.popleft()
                if self.waiting and not self.paused:
                    heap = self.heap
                    while heap[0][2].state != _QUEUED:
                        heapq.heappop(heap)
                    if self.limiter is not None:
                        delay = self.limiter.reserve()
                        if delay > 0.0:
                            self.idle_workers += 1
                            self.clock.wait(self.work, delay)
                            self.idle_workers -= 1
                            continue
                    task = heapq.heappop(heap)[2]
                    task.state = _TAKEN
                    task.future._task = None  # no longer cancellable from the queue
                    self.waiting -= 1
                    self._notify_change()
                    if not task.future.set_running_or_notify_cancel():
                        continue  # cancelled between our check and now
                    self.running += 1
                    return task
                if self.shut_down:
                    break
                self.idle_workers += 1
                self.work.wait()
                self.idle_workers -= 1
            self.threads.discard(current)
            if self.started:  # a surplus worker leaves: another takes what submit() started
                self.work.notify()
            if self.watchdog is not None:
                self.timer.notify()
            self._notify_change()
            return None

    def run(self, task: _Task) -> None:
        future, fn = task.future, task.fn
        if task.timeout is not None:
            self._arm(task)
        if signals.task_started.receivers:
            self.emit(signals.task_started, future=future, fn=fn)
        try:
            result = fn(*task.args, **task.kwargs)
        except BaseException as exc:
            try:
                future.set_exception(exc)
            except InvalidStateError:
                return  # it timed out already, and that has been reported
            if signals.task_failed.receivers:
                self.emit(signals.task_failed, future=future, fn=fn, exception=exc)
        else:
            try:
                future.set_result(result)
            except InvalidStateError:
                return
            if signals.task_succeeded.receivers:
                self.emit(signals.task_succeeded, future=future, fn=fn, result=result)

    def emit(self, signal: NamedSignal, **kwargs: Any) -> None:
        # The executor is looked up only for the send: a worker must never keep
        # it alive, or an executor nobody references could not be collected.
        sender = self.owner()
        if sender is not None:
            signals.emit(signal, sender, **kwargs)

    # -- timeouts -----------------------------------------------------------------

    def _arm(self, task: _Task) -> None:
        assert task.timeout is not None
        with self.lock:
            deadline = self.clock.now() + task.timeout
            heapq.heappush(self.deadlines, (deadline, next(self.sequence), task))
            if self.watchdog is None:
                self.watchdog = threading.Thread(
                    target=self._watch, name=f"{self.thread_name_prefix}-timeouts", daemon=True
                )
                self.watchdog.start()
            elif self.deadlines[0][2] is task:
                self.timer.notify()

    def _watch(self) -> None:
        while True:
            expired: list[_Task] = []
            with self.lock:
                deadlines = self.deadlines
                while True:
                    while deadlines and deadlines[0][2].future.done():
                        heapq.heappop(deadlines)
                    if not deadlines:
                        if self.shut_down and not self.threads:
                            self.watchdog = None
                            return
                        self.timer.wait()
                        continue
                    now = self.clock.now()
                    while deadlines and deadlines[0][0] <= now:
                        expired.append(heapq.heappop(deadlines)[2])
                    if expired:
                        break
                    self.clock.wait(self.timer, deadlines[0][0] - now)
            for task in expired:
                self._expire(task)

    def _expire(self, task: _Task) -> None:
        assert task.timeout is not None
        error = TaskTimeout(task.timeout, getattr(task.fn, "__qualname__", repr(task.fn)))
        try:
            task.future.set_exception(error)
        except InvalidStateError:
            return  # finished just in time
        if signals.task_failed.receivers:
            self.emit(signals.task_failed, future=task.future, fn=task.fn, exception=error)

    # -- control ------------------------------------------------------------------

    def wait_until(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        with self.lock:
            if predicate():
                return True
            deadline = None if timeout is None else self.clock.now() + timeout
            self.change_waiters += 1
            try:
                while not predicate():
                    if deadline is None:
                        self.changed.wait()
                        continue
                    remaining = deadline - self.clock.now()
                    if remaining <= 0:
                        return False
                    self.clock.wait(self.changed, remaining)
                return True
            finally:
                self.change_waiters -= 1

    def take_all_waiting(self) -> list[_Task]:
        with self.lock:
            tasks = [entry[2] for entry in self.heap if entry[2].state == _QUEUED]
            for task in tasks:
                task.state = _REMOVED
            self.heap = []
            self.waiting = 0
            self._notify_change()
        return tasks

    def set_paused(self, paused: bool) -> None:
        with self.lock:
            self.paused = paused
            if not paused:
                self.work.notify_all()
                self._spawn_all_needed()

    def set_max_workers(self, max_workers: int) -> None:
        with self.lock:
            self.max_workers = max_workers
            self.work.notify_all()  # surplus workers exit when they next look for work
            self._spawn_all_needed()

    def begin_shutdown(self) -> None:
        with self.lock:
            self.shut_down = True
            self.paused = False  # a paused executor would never drain
            self.work.notify_all()
            self._spawn_all_needed()
            self.timer.notify_all()
            self._notify_change()

    def join(self) -> None:
        while True:
            with self.lock:
                thread = next(iter(self.threads), None) or self.watchdog
            if thread is None:
                return
            thread.join()


def _work(core: _Core) -> None:
    finished = False
    while True:
        task = core.next_task(finished)
        if task is None:
            return
        if task is _WENT_IDLE:
            core.emit(signals.executor_idle)
            finished = False
            continue
        core.run(task)
        del task
        finished = True


@atexit.register
def _drain_at_exit() -> None:
    # Worker threads are daemons so an idle executor never blocks interpreter exit;
    # like ThreadPoolExecutor, work already submitted is still finished.
    for core in list(_live_cores):
        core.begin_shutdown()
    for core in list(_live_cores):
        core.join()


def _make_limiter(
    rate: float | None, per: float, burst: int | None, strict: bool, clock: Clock
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
    :param clock: where time is read; tests pass :class:`jobq.testing.FakeClock`.
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
        clock: Clock = SYSTEM_CLOCK,
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
        self._core = _Core(
            max_workers, limiter, timeout, max_queued, when_full, clock,
            thread_name_prefix=f"jobq-{name}" if name else "jobq-executor",
        )
        self._core.owner = weakref.ref(self)
        _live_cores.add(self._core)
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
        tasks = self._core.take_all_waiting()
        for task in tasks:
            if Future.cancel(task.future):  # the base method: the task is already out
                task.future.set_running_or_notify_cancel()
        return len(tasks)

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
        self, rate: float | None, per: float = 1.0, *, burst: int | None = None,
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
        with core.lock:
            core.limiter = limiter
            core.work.notify_all()

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
