"""Running durable jobs: the worker pool, and the inline runner used by tests.

A pool has one dispatcher thread, the only one that writes to the database
in the normal course (claims in batches, completions in one transaction per
batch, heartbeats, sweeps, retention), and ``concurrency`` threads that run
handlers. Claimed jobs are leased: a pool that dies simply stops renewing, and
any other pool releases its jobs once the lease has expired.

Depends on :mod:`jobq.queue`; nothing in the queue depends on this module.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from . import codec, defaults, signals
from ._failures import describe, error_of, retry_delay, storable
from .context import JobContext, _set_current
from .errors import Fail, PayloadError, Retry, TaskTimeout, TransientError, UnknownTask
from .job import Job, JobError, JobStatus
from .storage.base import Completion, Notifier
from .validate import check_count

if TYPE_CHECKING:
    from .queue import DurableQueue
    from .tasks import Task

logger = logging.getLogger(__name__)

UNKNOWN_TASK_WAIT = defaults.UNKNOWN_TASK_WAIT
_MAX_CLAIM = defaults.MAX_CLAIM
SCHEDULE_CHECK_INTERVAL = defaults.SCHEDULE_CHECK_INTERVAL
NOTIFIED_POLL_INTERVAL = defaults.NOTIFIED_POLL_INTERVAL
_pool_numbers = itertools.count(1)
_live_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


@dataclass(frozen=True)
class Outcome:
    """What an attempt came to. ``delay`` is seconds before the next attempt for
    ``failed`` (None: no retry) and ``snoozed`` (a ``Retry`` raised by the task)."""

    kind: Literal["completed", "failed", "snoozed", "cancelled"]
    result: str | None = None
    error: JobError | None = None
    delay: float | None = None


def execute(queue: DurableQueue, job: Job, context: JobContext) -> Outcome:
    """Run one attempt of ``job`` in this thread and say how it went. Never raises.

    Whatever the task does ends the attempt with a readable reason: an exception
    of any kind (``SystemExit`` and ``KeyboardInterrupt`` too: in a worker thread
    they end the attempt, not the process), one whose ``str()`` raises, a result
    JSON cannot hold (including one nested too deeply or containing itself), or a
    backoff that raises (the job then fails without a retry).
    """
    task = queue.tasks.get(job.name)
    if task is None:
        error = error_of(UnknownTask(job.name, list(queue.tasks)))
        if queue.unknown_tasks == "wait":
            logger.warning("jobq: job %d: %s; trying again in %g s", job.id, error.message,
                           UNKNOWN_TASK_WAIT)
            return Outcome("snoozed", error=error, delay=UNKNOWN_TASK_WAIT)
        return Outcome("failed", error=error)
    try:
        payload = json.loads(job.payload)
        args, kwargs = payload["args"], payload["kwargs"]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        message = f"the stored arguments of job {job.id} cannot be read: {describe(exc)}"
        return Outcome("failed", error=JobError("PayloadError", storable(message)))
    _set_current(context)
    try:
        if queue.around_job is None:
            result = task.fn(*args, **kwargs)
        else:
            result = queue.around_job(lambda: task.fn(*args, **kwargs))
    except Retry as exc:
        if exc.delay is not None:
            return Outcome("snoozed", error=error_of(exc), delay=exc.delay)
        return _failure(task, job, error_of(exc), snooze=True)
    except Fail as exc:
        return Outcome("failed", error=error_of(exc))
    except BaseException as exc:  # a task must never take its worker down
        retry_after = exc.retry_after if isinstance(exc, TransientError) else None
        return _failure(task, job, error_of(exc), retry_after=retry_after)
    finally:
        _set_current(None)
    if context.cancel_requested:
        return Outcome("cancelled")
    return _completion(job, result)


def _failure(
    task: Task[..., Any], job: Job, error: JobError, *, retry_after: float | None = None,
    snooze: bool = False,
) -> Outcome:
    """A failed attempt, to run again after the task's backoff (or ``retry_after``)
    while attempts remain; ``snooze``: a ``Retry`` without a delay, not counted."""
    if not snooze and job.attempts >= job.max_attempts:
        return Outcome("failed", error=error)
    if retry_after is not None:
        return Outcome("failed", error=error, delay=retry_after)
    delay, why_not = retry_delay(task.backoff, job.attempts)
    if delay is None:
        error = JobError(error.type, storable(f"{error.message}; {why_not}"), error.traceback)
        return Outcome("failed", error=error)
    return Outcome("snoozed" if snooze else "failed", error=error, delay=delay)


def _completion(job: Job, result: object) -> Outcome:
    what = f"result of {job.name}"
    try:
        text = codec.encode(result, name=what)
    except PayloadError as exc:  # names what JSON or UTF-8 cannot hold, and where
        return Outcome("failed", error=error_of(exc))
    except Exception as exc:  # whatever encoding a strange object raises
        return _unstorable(exc, f"the {what} cannot be stored as JSON")
    return Outcome("completed", result=text)


def _unstorable(exc: Exception, reason: str) -> Outcome:
    error = error_of(exc, context=reason)
    return Outcome("failed", error=JobError("PayloadError", error.message, error.traceback))


def apply(queue: DurableQueue, job: Job, outcome: Outcome, now: float) -> JobStatus | None:
    """Record an outcome other than ``completed`` under the job's lease; return the
    job's new status, or None if the lease was no longer held."""
    storage, token = queue.storage, job.lease_token
    assert token is not None
    if outcome.kind == "completed":
        done = storage.complete(job.id, token, now=now, result=outcome.result)
        status = JobStatus.COMPLETED if done else None
    elif outcome.kind == "cancelled":
        status = JobStatus.CANCELLED if storage.finish_cancelled(job.id, token, now=now) else None
    elif outcome.kind == "snoozed":
        assert outcome.delay is not None
        status = storage.release(job.id, token, now=now, run_at=now + outcome.delay)
    else:
        assert outcome.error is not None
        retry_at = None if outcome.delay is None else now + outcome.delay
        status = storage.fail(job.id, token, outcome.error, now=now, retry_at=retry_at)
    if status is not None:
        _announce(queue, job, outcome, status, now)
    return status


def _announce(
    queue: DurableQueue, job: Job, outcome: Outcome, status: JobStatus, now: float
) -> None:
    if status is JobStatus.COMPLETED:
        if signals.job_succeeded.receivers:
            result = None if outcome.result is None else json.loads(outcome.result)
            signals.emit(signals.job_succeeded, queue, job=job, result=result)
    elif status is JobStatus.FAILED:
        if signals.job_failed.receivers:
            signals.emit(signals.job_failed, queue, job=job, error=outcome.error)
    elif status is JobStatus.CANCELLED:
        if signals.job_cancelled.receivers:
            signals.emit(signals.job_cancelled, queue, job=job)
    elif signals.job_retrying.receivers:
        run_at = now + (outcome.delay or 0.0)
        signals.emit(signals.job_retrying, queue, job=job, error=outcome.error, run_at=run_at)


def _progress_reporter(queue: DurableQueue, job: Job) -> Any:
    def report(progress: str) -> bool:
        assert job.lease_token is not None
        return queue.storage.set_progress(job.id, job.lease_token, progress,
                                          now=queue.clock.now())

    return report


def run_inline(
    queue: DurableQueue, *, queues: Collection[str] | None, max_jobs: int | None
) -> int:
    """Claim and run due jobs one by one in this thread; see ``DurableQueue.run_until_empty``."""
    owner = f"inline:{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    names = list(queues) if queues is not None else queue.queue_names()
    count = 0
    while max_jobs is None or count < max_jobs:
        now = queue.clock.now()
        queue.storage.rescue_expired(now=now)
        jobs = queue.storage.claim(names, owner=owner, now=now,
                                   lease_seconds=queue.lease_seconds, limit=1)
        if not jobs:
            break
        job = jobs[0]
        if signals.job_started.receivers:
            signals.emit(signals.job_started, queue, job=job)
        outcome = execute(queue, job, JobContext(job, _progress_reporter(queue, job), queue))
        apply(queue, job, outcome, queue.clock.now())
        count += 1
    return count


class _Attempt:
    """A claimed job in this pool: waiting for a thread, running, or just finished."""

    __slots__ = ("context", "deadline", "given_up", "job", "lost", "started", "stuck_since",
                 "thread", "timeout")

    def __init__(self, queue: DurableQueue, job: Job) -> None:
        self.job = job
        self.context = JobContext(job, _progress_reporter(queue, job), queue)
        self.started: float | None = None
        self.deadline: float | None = None
        self.thread: str | None = None
        # Past its deadline, the failure to record once its thread returns (whatever
        # it returns); until then the pool keeps its lease and its slot.
        self.timeout: Outcome | None = None
        self.stuck_since: float | None = None  # the attempt is over; its thread runs on
        self.given_up = False  # its failure is recorded; the thread's outcome is ignored
        self.lost = False  # the lease is gone: nothing of it may be recorded

    @property
    def abandoned(self) -> bool:
        return self.given_up or self.lost


class WorkerPool:
    """Worker threads of one process taking jobs from a :class:`~jobq.DurableQueue`.

    Made by :meth:`DurableQueue.start_workers`. :meth:`stop` ends it; so does
    the interpreter's exit (with a 30 s grace for running jobs).

    Nothing a task does ends a worker thread (see :func:`execute`). Should one
    fail anyway (a ``job_started`` receiver raising ``SystemExit``), its attempt
    is recorded as failed, under the task's retry rules, and a new thread takes
    its place. A thread stuck in a task past its ``timeout`` is described in
    :meth:`running`; while every thread is stuck, the jobs claimed ahead for them
    go back to the queue for other pools.
    """

    def __init__(
        self,
        queue: DurableQueue,
        *,
        concurrency: int,
        queues: Collection[str] | None,
        prefetch: int | None,
        name: str | None,
    ) -> None:
        check_count("concurrency", concurrency)
        self._auto_prefetch = prefetch is None
        if prefetch is None:
            prefetch = concurrency
        check_count("prefetch", prefetch, minimum=0)
        if isinstance(queues, str):
            raise TypeError(f"queues must be a collection of names, got the string {queues!r}")
        self.queue = queue
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.queues = tuple(queues) if queues is not None else tuple(queue.queue_names())
        number = next(_pool_numbers)
        self.name = name or f"pool{number}"
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{self.name}"
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._ready: deque[_Attempt] = deque()
        self._running: set[_Attempt] = set()
        self._outcomes: list[tuple[_Attempt, Outcome]] = []
        self._wakeup = threading.Event()
        self._stopping = False
        self._stop_deadline = 0.0
        self._threads: list[threading.Thread] = []
        self._workers = 0  # worker threads started and not yet left
        self._numbers = itertools.count(1)
        self._dispatcher: threading.Thread | None = None
        self._pid = os.getpid()
        self._sweep_interval = min(queue.lease_seconds / 2, 10.0)
        self._job_seconds = 1.0  # moving average of attempt durations (monotonic)
        self._backlog = False  # the last claim was full: more jobs are waiting
        self._told = False  # a job was enqueued since the last claim: skip the peek
        self._unsubscribe: Callable[[], None] | None = None
        self._idle_wait = queue.poll_interval

    # -- life ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher and worker threads (called by ``start_workers``)."""
        if self._dispatcher is not None:
            raise RuntimeError(f"worker pool {self.name} was already started")
        with self._lock:
            self._add_workers(self.concurrency)
        storage = self.queue.storage
        if isinstance(storage, Notifier):
            # Other processes' jobs arrive as notifications: polling is only the
            # fallback (and finds delayed jobs as they fall due).
            self._unsubscribe = storage.subscribe(self.wake)
            self._idle_wait = max(self.queue.poll_interval, NOTIFIED_POLL_INTERVAL)
        self._dispatcher = threading.Thread(
            target=self._dispatch, name=f"jobq-{self.name}-dispatcher", daemon=True
        )
        self._dispatcher.start()
        _live_pools.add(self)
        _warn_if_sqlite_is_affected(self.queue)
        if signals.worker_started.receivers:
            signals.emit(signals.worker_started, self.queue, pool=self)

    def stop(self, timeout: float = defaults.STOP_GRACE_SECONDS) -> bool:
        """Stop taking jobs, give running ones up to ``timeout`` seconds to finish,
        and hand back jobs claimed but not started. Returns True if every running
        job finished in time. Jobs still running then are recorded as failed for
        this attempt (``WorkerStopped``) and run again if attempts remain, so no
        lease outlives the pool; their threads cannot be stopped, and what they
        return is ignored."""
        with self._lock:
            if not self._stopping:
                self._stopping = True
                self._stop_deadline = time.monotonic() + timeout
            self._has_work.notify_all()
        self._wakeup.set()
        dispatcher = self._dispatcher
        if dispatcher is not None and dispatcher is not threading.current_thread():
            dispatcher.join(timeout + 5.0)
        deadline = time.monotonic() + 1.0
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            finished = not self._running
        _live_pools.discard(self)
        return finished

    def set_concurrency(self, concurrency: int) -> None:
        """Change how many jobs this pool runs at once, while it runs: new threads
        start at once; surplus ones leave as soon as their current job is done."""
        check_count("concurrency", concurrency)
        with self._lock:
            self.concurrency = concurrency
            if self._auto_prefetch:
                self.prefetch = concurrency
            if self._dispatcher is not None and not self._stopping:
                self._add_workers(concurrency - self._workers)
            self._has_work.notify_all()  # surplus threads notice and leave
        self._wakeup.set()

    def _add_workers(self, count: int) -> None:
        # Called with the lock held.
        for _ in range(count):
            thread = threading.Thread(
                target=self._work, name=f"jobq-{self.name}-worker-{next(self._numbers)}",
                daemon=True,
            )
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            self._workers += 1
            thread.start()

    @property
    def is_alive(self) -> bool:
        """True while the dispatcher runs (it renews leases; without it jobs are rescued)."""
        return self._dispatcher is not None and self._dispatcher.is_alive()

    def wake(self, queue_name: str | None = None) -> None:
        """Look for work now (called when a job is enqueued in this process, or
        another one says so through the storage)."""
        if queue_name is None or queue_name in self.queues:
            self._told = True
            self._wakeup.set()

    def running(self) -> list[dict[str, Any]]:
        """What each busy thread is doing: ``id``, ``name``, ``queue`` and ``attempt``
        of its job, ``started_at`` (queue clock seconds), ``thread`` (its name),
        ``timed_out`` (the attempt ran past its task's ``timeout``), ``stuck`` (the
        attempt is over, timed out or given up by :meth:`stop`, but the thread still
        runs the task: threads cannot be stopped) and ``stuck_since`` (queue clock
        seconds, or None).

        A stuck thread keeps its place in ``concurrency`` and its job keeps its
        lease (and its place in the task's ``concurrency_limit``) until the task
        returns; the job's ``TaskTimeout`` failure is recorded then, and it runs
        again if attempts remain."""
        with self._lock:
            attempts = list(self._running)
        return [
            {
                "id": a.job.id, "name": a.job.name, "queue": a.job.queue,
                "attempt": a.job.attempts, "started_at": a.started, "thread": a.thread,
                "timed_out": a.timeout is not None, "stuck": a.stuck_since is not None,
                "stuck_since": a.stuck_since,
            }
            for a in attempts
        ]

    # -- worker threads -------------------------------------------------------------

    def _work(self) -> None:
        attempt: _Attempt | None = None
        try:
            while (attempt := self._next_attempt()) is not None:
                self._run(attempt)
        except BaseException as exc:  # e.g. a signal receiver's SystemExit
            self._replace_dead_worker(attempt, exc)

    def _next_attempt(self) -> _Attempt | None:
        """Wait for a job to run; None when this thread should leave."""
        with self._lock:
            while not self._ready and not self._stopping and self._workers <= self.concurrency:
                self._has_work.wait()
            if self._stopping or self._workers > self.concurrency:
                self._workers -= 1
                return None
            attempt = self._ready.popleft()
            self._running.add(attempt)
            attempt.started = self.queue.clock.now()
            attempt.thread = threading.current_thread().name
            task = self.queue.tasks.get(attempt.job.name)
            if task is not None and task.timeout is not None:
                attempt.deadline = attempt.started + task.timeout
            return attempt

    def _run(self, attempt: _Attempt) -> None:
        if signals.job_started.receivers:
            signals.emit(signals.job_started, self.queue, job=attempt.job)
        began = time.monotonic()
        outcome = execute(self.queue, attempt.job, attempt.context)
        took = time.monotonic() - began
        with self._lock:
            self._job_seconds += (took - self._job_seconds) * 0.1
            self._finish(attempt, outcome)
        self._wakeup.set()

    def _finish(self, attempt: _Attempt, outcome: Outcome) -> None:
        """Its thread is done with ``attempt``: record how it went. Lock held."""
        self._running.discard(attempt)
        if not attempt.abandoned:
            self._outcomes.append((attempt, attempt.timeout or outcome))

    def _replace_dead_worker(self, attempt: _Attempt | None, exc: BaseException) -> None:
        """Something escaped a worker thread (a signal receiver raising SystemExit,
        a bug): record its attempt as failed, and start a thread in its place."""
        logger.error("jobq worker pool %s: a worker thread failed; starting another",
                     self.name, exc_info=exc)
        with self._lock:
            if attempt is not None and attempt in self._running:
                error = error_of(exc, context=f"the worker thread running job {attempt.job.id} "
                                              "failed around the task")  # fmt: skip
                task = self.queue.tasks.get(attempt.job.name)
                failed = (Outcome("failed", error=error) if task is None
                          else _failure(task, attempt.job, error))  # fmt: skip
                self._finish(attempt, failed)
            self._workers -= 1
            if not self._stopping:
                self._add_workers(max(0, self.concurrency - self._workers))
            self._has_work.notify_all()
        self._wakeup.set()

    # -- dispatcher -----------------------------------------------------------------

    def _dispatch(self) -> None:
        clock = self.queue.clock
        now = clock.now()
        next_heartbeat = now + self.queue.lease_seconds / 3
        next_sweep = now  # rescue what dead workers left before claiming
        next_purge = now + 1.0
        next_schedules = now  # fire (and first store) the declared schedules at once
        failures = 0
        while True:
            self._wakeup.clear()
            more = False
            try:
                now = clock.now()
                self._flush(now)
                if self._stopping and self._finish_stopping():
                    break
                if now >= next_heartbeat:
                    self._heartbeat(now)
                    next_heartbeat = now + self.queue.lease_seconds / 3
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + self._sweep_interval
                if now >= next_purge:
                    self._purge(now)
                    next_purge = now + self.queue.retention.interval
                if now >= next_schedules and self.queue.declared_schedules:
                    self.queue.fire_due_schedules(now)
                    next_schedules = now + SCHEDULE_CHECK_INTERVAL
                self._expire_overdue(now)
                if not self._stopping:
                    more = self._claim(now)
                failures = 0
            except Exception:
                failures += 1
                logger.exception("jobq worker pool %s: database operation failed", self.name)
                self._wakeup.wait(min(5.0, 0.05 * 2**failures))
                continue
            if not more:
                wait = self._idle_wait
                if self.queue.declared_schedules:
                    wait = min(wait, max(0.0, next_schedules - clock.now()))
                self._wakeup.wait(wait)
        if self._unsubscribe is not None:
            self._unsubscribe()
        if signals.worker_stopped.receivers:
            signals.emit(signals.worker_stopped, self.queue, pool=self)

    def _finish_stopping(self) -> bool:
        """While stopping: hand back unstarted jobs; True once the pool may end."""
        with self._lock:
            unstarted = list(self._ready)
            self._ready.clear()
            busy = bool(self._running)
        now = self.queue.clock.now()
        for attempt in unstarted:
            token = attempt.job.lease_token
            assert token is not None
            self.queue.storage.release(attempt.job.id, token, now=now, run_at=attempt.job.run_at)
        if busy and time.monotonic() < self._stop_deadline:
            return False
        with self._lock:
            if busy:
                self._give_up_running(now)
            return not self._outcomes

    def _give_up_running(self, now: float) -> None:
        """The grace period is over: record the jobs still running as failed for this
        attempt (to run again if attempts remain), so no lease outlives the pool.
        Their threads cannot be stopped; what they return is ignored. Lock held."""
        for attempt in self._running:
            if attempt.abandoned:
                continue
            attempt.given_up = True  # its outcome is recorded here, not by its thread
            if attempt.stuck_since is None:
                attempt.stuck_since = now
            job = attempt.job
            error = JobError(
                "WorkerStopped",
                f"the worker pool {self.name} stopped before the job finished (its grace "
                "period ran out)",
            )
            delay = None if job.attempts >= job.max_attempts else 0.0
            stopped = Outcome("failed", error=error, delay=delay)
            self._outcomes.append((attempt, attempt.timeout or stopped))

    def _hand_back_unrunnable(self, now: float) -> None:
        """Every thread is stuck: hand the jobs waiting for one back to the queue, so
        that other pools run them, rather than renewing their leases for nothing."""
        with self._lock:
            if self._runnable_threads() > 0 or not self._ready:
                return
            unrunnable = list(self._ready)
            self._ready.clear()
        for index, attempt in enumerate(unrunnable):
            token = attempt.job.lease_token
            assert token is not None
            try:
                self.queue.storage.release(attempt.job.id, token, now=now,
                                           run_at=attempt.job.run_at)  # fmt: skip
            except BaseException:
                with self._lock:  # keep renewing what was not handed back; try again later
                    self._ready.extendleft(reversed(unrunnable[index:]))
                raise
        logger.warning(
            "jobq worker pool %s: every thread is stuck in a task past its timeout; handed "
            "back %d jobs waiting for one", self.name, len(unrunnable),
        )

    def _runnable_threads(self) -> int:
        """Threads that can take a job now or once their task returns. Lock held."""
        stuck = sum(1 for attempt in self._running if attempt.stuck_since is not None)
        return self.concurrency - stuck

    def _claim(self, now: float) -> bool:
        with self._lock:
            if self._runnable_threads() <= 0:
                return False
            prefetch = self.prefetch
            if self._auto_prefetch:
                # Short jobs: claim about 20 ms of work per thread ahead (at most 256 jobs),
                # so one transaction serves many jobs; long jobs: `concurrency` ahead.
                ahead = int(0.02 / max(self._job_seconds, 1e-6))
                prefetch = max(prefetch, min(256 - self.concurrency, ahead * self.concurrency))
            free = self.concurrency + prefetch - len(self._ready) - len(self._running)
        free = min(free, _MAX_CLAIM)
        if free <= 0:
            return False
        storage = self.queue.storage
        told, self._told = self._told, False
        if not (self._backlog or told) and not storage.has_runnable(self.queues, now=now):
            return False
        limits = self.queue.task_limits
        if limits:
            # Limited jobs only for idle threads: a claim counts as a start, so
            # they must not wait behind others in the ready list.
            with self._lock:
                idle = self.concurrency - len(self._running) - len(self._ready)
            jobs = storage.claim(self.queues, owner=self.owner, now=now,
                                 lease_seconds=self.queue.lease_seconds, limit=free,
                                 limits=limits, limited_at_most=max(0, idle))  # fmt: skip
        else:
            jobs = storage.claim(self.queues, owner=self.owner, now=now,
                                 lease_seconds=self.queue.lease_seconds, limit=free)  # fmt: skip
        self._backlog = len(jobs) == free
        if jobs:
            with self._lock:
                self._ready.extend(_Attempt(self.queue, job) for job in jobs)
                self._has_work.notify(len(jobs))
        return len(jobs) == free

    def _flush(self, now: float) -> None:
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return
        try:
            completed = [(a, o) for a, o in outcomes if o.kind == "completed"]
            if completed:
                done = self.queue.storage.complete_many(
                    [Completion(a.job.id, a.job.lease_token or "", o.result) for a, o in completed],
                    now=now,
                )
                for (attempt, outcome), ok in zip(completed, done, strict=False):
                    if ok:
                        _announce(self.queue, attempt.job, outcome, JobStatus.COMPLETED, now)
                outcomes = [(a, o) for a, o in outcomes if o.kind != "completed"]
            while outcomes:
                attempt, outcome = outcomes[0]
                apply(self.queue, attempt.job, outcome, now)
                outcomes.pop(0)
        except BaseException:
            with self._lock:  # keep what was not recorded; the next flush tries again
                self._outcomes[:0] = outcomes
            raise

    def _heartbeat(self, now: float) -> None:
        with self._lock:
            held = [a for a in itertools.chain(self._ready, self._running) if not a.abandoned]
            held += [a for a, _ in self._outcomes if not a.lost]
        if not held:
            return
        result = self.queue.storage.renew(
            [(a.job.id, a.job.lease_token or "") for a in held],
            now=now, lease_seconds=self.queue.lease_seconds,
        )
        if not result.lost and not result.cancel_requested:
            return
        with self._lock:
            for attempt in held:
                if attempt.job.id in result.cancel_requested:
                    attempt.context.request_cancel()
                if attempt.job.id in result.lost:
                    attempt.lost = True
                    if attempt in self._ready:
                        self._ready.remove(attempt)
            self._outcomes = [(a, o) for a, o in self._outcomes if not a.lost]

    def _sweep(self, now: float) -> None:
        rescued = self.queue.storage.rescue_expired(now=now)
        if rescued.total:
            logger.warning(
                "jobq: released %d jobs whose worker stopped renewing its lease "
                "(requeued %s, failed %s, cancelled %s)", rescued.total,
                list(rescued.requeued), list(rescued.failed), list(rescued.cancelled),
            )
            if signals.job_lease_expired.receivers:
                signals.emit(signals.job_lease_expired, self.queue, requeued=rescued.requeued,
                             failed=rescued.failed, cancelled=rescued.cancelled)
            self._wakeup.set()

    def _purge(self, now: float) -> None:
        for status, age in self.queue.retention.ages().items():
            self.queue.storage.purge(older_than=now - age, statuses=[status])

    def _expire_overdue(self, now: float) -> None:
        """Mark attempts past their deadline as timed out. Their threads cannot be
        stopped, so each keeps its lease (renewed), its slot in this pool and in its
        task's ``concurrency_limit``; the failure is recorded when it returns, or
        when the pool gives up on it as it stops."""
        with self._lock:
            for attempt in self._running:
                if (attempt.abandoned or attempt.timeout is not None
                        or attempt.deadline is None or now < attempt.deadline):
                    continue
                job = attempt.job
                task = self.queue.tasks.get(job.name)
                assert task is not None
                assert task.timeout is not None
                attempt.timeout = _failure(task, job, error_of(TaskTimeout(task.timeout, job.name)))
                attempt.stuck_since = attempt.deadline
                logger.warning(
                    "jobq worker pool %s: job %d (%s) passed its timeout of %g s; its thread "
                    "is stuck until the task returns", self.name, job.id, job.name, task.timeout,
                )
        self._hand_back_unrunnable(now)

    def __repr__(self) -> str:
        return (
            f"<WorkerPool {self.name} concurrency={self.concurrency} queues={list(self.queues)} "
            f"{'alive' if self.is_alive else 'stopped'}>"
        )


_warned_about_wal_reset = False


def _warn_if_sqlite_is_affected(queue: DurableQueue) -> None:
    global _warned_about_wal_reset
    if not _warned_about_wal_reset and getattr(queue.storage, "affected_by_wal_reset_bug", False):
        _warned_about_wal_reset = True
        logger.warning(
            "jobq: SQLite %s has the WAL-reset bug (3.7.0 to 3.51.2), which matters only "
            "when several processes write one database file at once; for that, install "
            "jobq[apsw] and use DurableQueue(..., driver='apsw'), which bundles a fixed SQLite",
            ".".join(map(str, getattr(queue.storage, "sqlite_version", ()))) or "",
        )


@atexit.register
def _stop_pools_at_exit() -> None:
    for pool in list(_live_pools):
        if pool._pid == os.getpid():
            pool.stop(timeout=defaults.STOP_GRACE_SECONDS)
