"""The scheduling core of :class:`jobq.BoundedExecutor`: the priority heap, the slots
and the worker threads.

Workers are threads created on demand and reused; they take tasks from one
priority heap guarded by one lock, so a limit set on the executor holds for
every thread that submits to it. A task that may start the moment it is
submitted (a free slot, a token, nobody waiting) is started by ``submit``
itself and handed to a worker, so a task submitted after it, whatever its
priority, cannot overtake it. Worker threads hold the :class:`Core`, never the
executor, so an executor nobody references is collected and its threads wind down.

Rule: the in-memory tier sits with the limiters; this module imports only basic
values (``clock``, ``errors``, ``signals``) and ``ratelimit``, never storage, the
durable queue or anything above them, and it never names the public executor class.
"""

from __future__ import annotations

import atexit
import collections
import heapq
import itertools
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any, TypeVar

from blinker import NamedSignal

from .. import signals
from ..clock import MonotonicClock
from ..errors import QueueFull, TaskTimeout
from ..ratelimit import RateLimiter

T = TypeVar("T")

_QUEUED, _TAKEN, _REMOVED = 0, 1, 2

# Every core not yet collected, so that work already submitted finishes at exit.
_live_cores: weakref.WeakSet[Core] = weakref.WeakSet()


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

    _core: Core | None = None
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


class Core:
    """An executor's shared state: limits, the waiting heap, counters and worker threads.

    Worker threads hold this, never the executor itself, so an executor nobody
    references is collected and its threads wind down. ``owner`` returns the
    object to send signals as (the executor), or None once it is gone.
    """

    def __init__(
        self,
        max_workers: int,
        limiter: RateLimiter | None,
        timeout: float | None,
        max_queued: int | None,
        when_full: str,
        clock: MonotonicClock,
        thread_name_prefix: str,
    ) -> None:
        self.max_workers = max_workers
        self.limiter = limiter
        self.timeout = timeout
        self.max_queued = max_queued
        self.when_full = when_full
        self.clock = clock
        self.thread_name_prefix = thread_name_prefix
        self.owner: Callable[[], object | None] = lambda: None

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
        _live_cores.add(self)

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

    def cancel_waiting(self) -> int:
        """Take every waiting task out and cancel its future; return how many."""
        with self.lock:
            tasks = [entry[2] for entry in self.heap if entry[2].state == _QUEUED]
            for task in tasks:
                task.state = _REMOVED
            self.heap = []
            self.waiting = 0
            self._notify_change()
        for task in tasks:
            if Future.cancel(task.future):  # the base method: the task is already out
                task.future.set_running_or_notify_cancel()
        return len(tasks)

    def set_limiter(self, limiter: RateLimiter | None) -> None:
        """Decide starts with ``limiter`` from now on; waiting workers look again at once."""
        with self.lock:
            self.limiter = limiter
            self.work.notify_all()

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


def _work(core: Core) -> None:
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
