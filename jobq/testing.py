"""Helpers for testing code that uses jobq, importable from your own tests."""

from __future__ import annotations

import json
import threading
import weakref
from typing import TYPE_CHECKING, Any, Literal

from .executors import registry
from .job import Job, JobStatus

if TYPE_CHECKING:
    from .queue import DurableQueue
    from .tasks import Task

# A waiter that missed a notification re-checks after this many real seconds at most.
_RECHECK_SECONDS = 0.02


class FakeClock:
    """A clock that only moves when told to, for deterministic tests.

    Pass it as ``clock=`` to any jobq constructor, then call :meth:`advance`::

        clock = FakeClock()
        bucket = TokenBucket(rate=1, per=60, clock=clock)
        assert bucket.try_acquire()
        assert not bucket.try_acquire()
        clock.advance(60)
        assert bucket.try_acquire()

    Threads waiting for clock time (a rate-limited worker, a task timeout) wake
    up when the clock is advanced past their deadline.

    It serves as either kind of clock (:class:`~jobq.clock.MonotonicClock` and
    :class:`~jobq.clock.EpochClock`): its readings are whatever ``start`` (in
    seconds, default 0) makes them, so start it at an epoch time such as
    ``FakeClock(1_800_000_000)`` where times are stored.
    """

    epoch: Literal[True] = True

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._conditions: weakref.WeakSet[threading.Condition] = weakref.WeakSet()

    def now(self) -> float:
        return self._now

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        if timeout is None:
            condition.wait()
            return
        with self._lock:
            self._conditions.add(condition)
        # Fake seconds never pass by themselves, so this only waits for a notify
        # (from advance() or the owner); the short real timeout covers a
        # notification sent between the caller's reading of now() and this call.
        condition.wait(_RECHECK_SECONDS)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (>= 0) and wake every waiter."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds!r})")
        with self._lock:
            self._now += seconds
            waiting = list(self._conditions)
        for condition in waiting:
            with condition:
                condition.notify_all()

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"


def shutdown_executors(wait: bool = True) -> None:
    """Shut down every named executor made by :func:`jobq.executor`, cancelling what waits.

    Call it in your test teardown so each test starts with fresh named
    executors; the next ``jobq.executor(name, ...)`` with settings creates a new one.
    """
    registry.shutdown_all(wait=wait)


def enqueued(queue: DurableQueue, task: Task[Any, Any] | str | None = None) -> list[Job]:
    """Pending jobs of ``queue`` (all, or of one task), oldest first, up to 10,000."""
    name = None if task is None else queue.get_task(task).name
    return queue.list(status=JobStatus.PENDING, name=name, limit=10_000)


def assert_enqueued(
    queue: DurableQueue, task: Task[Any, Any] | str, /, *args: Any, **kwargs: Any
) -> Job:
    """Assert a pending job runs ``task`` with exactly these arguments; return it.

    Use it to check what code enqueued without running any job::

        signup(client, "ada@example.com")
        assert_enqueued(queue, send_welcome, "ada@example.com")
    """
    registered = queue.get_task(task)
    expected = json.loads(registered.encode(args, kwargs))
    candidates = enqueued(queue, registered)
    for job in candidates:
        if job.decoded_payload() == expected:
            return job
    seen = [job.decoded_payload() for job in candidates] or "none"
    raise AssertionError(
        f"no pending {registered.name} job with arguments {expected}; pending ones: {seen}"
    )


def assert_not_enqueued(queue: DurableQueue, task: Task[Any, Any] | str) -> None:
    """Assert no job of ``task`` is pending."""
    jobs = enqueued(queue, task)
    if jobs:
        ids = [job.id for job in jobs]
        raise AssertionError(f"{len(jobs)} pending job(s) of {jobs[0].name}: ids {ids}")
