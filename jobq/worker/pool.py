"""The worker pool: threads of one process running durable jobs.

A pool has one dispatcher thread, the only one that writes to the database
in the normal course (claims in batches, completions in one transaction per
batch, and the upkeep services of :mod:`jobq.worker.services`: heartbeats,
lease rescue, retention, schedules, the pool's row among the live pools), and
``concurrency`` threads that run handlers. Claimed jobs are leased: a pool that
dies simply stops renewing, and any other pool releases its jobs once the lease
has expired.

Rule: sees the queue as a :class:`~jobq.worker.host.QueueHost`; never imports
:mod:`jobq.queue`.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from typing import Any

from .. import defaults, signals
from ..storage.base import Notifier, RenewResult
from ..validate import check_count
from . import process
from .attempt import Attempt
from .execute import Outcome, claim, failure, record, run_attempt
from .failures import error_of
from .host import QueueHost
from .incidents import Incident
from .isolation import Children
from .presence import pool_owner
from .services import Service
from .upkeep import pool_services

logger = logging.getLogger("jobq.worker")

_MAX_CLAIM = defaults.MAX_CLAIM
NOTIFIED_POLL_INTERVAL = defaults.NOTIFIED_POLL_INTERVAL
_AHEAD_SECONDS = 0.02  # work claimed ahead per thread when jobs are short
_RETRY_WAIT_FIRST = 0.05  # seconds after a failed database operation, doubling ...
_RETRY_WAIT_MAX = 5.0  # ... up to this
_pool_numbers = itertools.count(1)


class WorkerPool:
    """Worker threads of one process taking jobs from a :class:`~jobq.DurableQueue`.

    Made by :meth:`DurableQueue.start_workers`. :meth:`stop` ends it; so does
    the interpreter's exit (with a 30 s grace for running jobs).

    Nothing a task does ends a worker thread (see :func:`~jobq.worker.execute.execute`). Should one
    fail anyway (a ``job_started`` receiver raising ``SystemExit``), its attempt
    is recorded as failed, under the task's retry rules, and a new thread takes
    its place. A thread stuck in a task past its ``timeout`` is described in
    :meth:`running`; while every thread is stuck, the jobs claimed ahead for them
    go back to the queue for other pools.
    """

    def __init__(
        self,
        queue: QueueHost,
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
        self.owner = pool_owner(self.name)
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._ready: deque[Attempt] = deque()
        self._running: set[Attempt] = set()
        self._outcomes: list[tuple[Attempt, Outcome]] = []
        self._wakeup = threading.Event()
        self._stopping = False
        self._stop_deadline = 0.0
        self._threads: list[threading.Thread] = []
        self._workers = 0  # worker threads started and not yet left
        self._numbers = itertools.count(1)
        self._dispatcher: threading.Thread | None = None
        self._pid = os.getpid()
        self._services: list[Service] = []
        self._job_seconds = 1.0  # moving average of attempt durations
        self._backlog = False  # the last claim was full: more jobs are waiting
        self._told = False  # a job was enqueued since the last claim: skip the peek
        self._unsubscribe: Callable[[], None] | None = None
        self._idle_wait = queue.poll_interval
        self.outage = Incident(logger, f"jobq worker pool {self.name}: database operation")
        self.children = Children(queue, self.name)  # of isolation="process" tasks

    # -- life ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatcher and worker threads (called by ``start_workers``)."""
        if self._dispatcher is not None:
            raise RuntimeError(f"worker pool {self.name} was already started")
        self.children.start()  # forks its server before the pool's threads start
        with self._lock:
            self._add_workers(self.concurrency)
        storage = self.queue.storage
        if isinstance(storage, Notifier):
            self._unsubscribe = storage.subscribe(self.wake)
            if getattr(storage, "notifies_every_enqueue", True):
                # Every process's jobs arrive as notifications: polling is only the
                # fallback (and finds delayed jobs as they fall due).
                self._idle_wait = max(self.queue.poll_interval, NOTIFIED_POLL_INTERVAL)
        self._dispatcher = threading.Thread(
            target=self._dispatch, name=f"jobq-{self.name}-dispatcher", daemon=True
        )
        self._dispatcher.start()
        process.track(self)
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
        process.untrack(self)
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
                target=self._work,
                name=f"jobq-{self.name}-worker-{next(self._numbers)}",
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
        runs the task: threads cannot be stopped), ``stuck_since`` (queue clock
        seconds, or None), ``isolation`` (``"process"``: the thread waits on a child
        process, killed at the timeout, so such an attempt is never stuck) and
        ``child_pid`` (that child's pid, else None).

        A stuck thread keeps its place in ``concurrency`` and its job keeps its
        lease (and its place in the task's ``concurrency_limit``) until the task
        returns; the job's ``TaskTimeout`` failure is recorded then, and it runs
        again if attempts remain."""
        with self._lock:
            attempts = list(self._running)
        return [self.children.describe(attempt.describe()) for attempt in attempts]

    # -- worker threads -------------------------------------------------------------

    def _work(self) -> None:
        attempt: Attempt | None = None
        thread = threading.current_thread().name
        try:
            while (attempt := self._next_attempt(thread)) is not None:
                self._run(attempt)
        except BaseException as exc:  # e.g. a signal receiver's SystemExit
            self._replace_dead_worker(attempt, exc)

    def _next_attempt(self, thread: str) -> Attempt | None:
        """Wait for a job to run; None when this thread should leave."""
        with self._lock:
            while not self._ready and not self._stopping and self._workers <= self.concurrency:
                self._has_work.wait()
            if self._stopping or self._workers > self.concurrency:
                self._workers -= 1
                return None
            attempt = self._ready.popleft()
            self._running.add(attempt)
            attempt.start(thread, self.queue.clock.now(), self.queue.tasks.get(attempt.job.name))
            return attempt

    def _run(self, attempt: Attempt) -> None:
        run = self.children.execute if attempt.isolated else None
        outcome = run_attempt(self.queue, attempt.context, run)
        with self._lock:
            self._job_seconds += (outcome.duration - self._job_seconds) * 0.1
            self._finish(attempt, outcome)
        # Set at most once per turn of the dispatcher (which clears it before
        # flushing): setting an Event takes its lock and notifies, for every job.
        if not self._wakeup.is_set():
            self._wakeup.set()

    def _finish(self, attempt: Attempt, outcome: Outcome) -> None:
        """Its thread is done with ``attempt``: record how it went. Lock held."""
        self._running.discard(attempt)
        if not attempt.abandoned:
            self._outcomes.append((attempt, attempt.outcome(outcome)))

    def _replace_dead_worker(self, attempt: Attempt | None, exc: BaseException) -> None:
        """Something escaped a worker thread (a signal receiver raising SystemExit,
        a bug): record its attempt as failed, and start a thread in its place."""
        logger.error(
            "jobq worker pool %s: a worker thread failed; starting another", self.name, exc_info=exc
        )
        with self._lock:
            if attempt is not None and attempt in self._running:
                error = error_of(
                    exc,
                    context=f"the worker thread running job {attempt.job.id} "
                    "failed around the task",
                )
                task = self.queue.tasks.get(attempt.job.name)
                failed = (
                    Outcome("failed", error=error, exception=exc)
                    if task is None
                    else failure(task, attempt.job, exc, error=error)
                )
                self._finish(attempt, failed)
            self._workers -= 1
            if not self._stopping:
                self._add_workers(max(0, self.concurrency - self._workers))
            self._has_work.notify_all()
        self._wakeup.set()

    # -- dispatcher -----------------------------------------------------------------

    def _dispatch(self) -> None:
        clock = self.queue.clock
        services = self._services = pool_services(
            self.queue,
            clock.now(),
            owner=self.owner,
            name=self.name,
            queues=self.queues,
            state=lambda: (self.concurrency, self._stopping),
            running=self.running,
            held=self._held,
            on_news=self._heard,
            on_rescued=self._wakeup.set,
        )
        outage = self.outage
        while True:
            self._wakeup.clear()
            try:
                more = self._dispatch_once(clock.now(), services)
                outage.succeeded()
            except Exception as exc:
                outage.failed(exc)
                self._wakeup.wait(min(_RETRY_WAIT_MAX, _RETRY_WAIT_FIRST * 2**outage.failures))
                continue
            if more is None:
                break
            if not more:
                self._wakeup.wait(self._idle_wait_until(services, clock.now()))
        for service in services:
            service.close()  # the pool's row in the registry of live pools goes
        self.children.close()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if signals.worker_stopped.receivers:
            signals.emit(signals.worker_stopped, self.queue, pool=self)

    def _dispatch_once(self, now: float, services: Sequence[Service]) -> bool | None:
        """Record outcomes, run the services that are due, claim: True if more jobs
        wait to be claimed, None once the pool has stopped."""
        self._flush(now)
        if self._stopping and self._finish_stopping():
            return None
        for service in services:
            service.tick(now)
        self._expire_overdue(now)
        return not self._stopping and self._claim(now)

    def _idle_wait_until(self, services: Sequence[Service], now: float) -> float:
        """Seconds to sleep when idle: the poll interval, or less for a punctual service."""
        wait = self._idle_wait
        for service in services:
            if service.punctual and service.active:
                wait = min(wait, max(0.0, service.next_run - now))
        return wait

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
            if not attempt.abandoned:  # its outcome is recorded here, not by its thread
                self._outcomes.append((attempt, attempt.give_up(self.name, now)))

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
                self.queue.storage.release(
                    attempt.job.id, token, now=now, run_at=attempt.job.run_at
                )
            except BaseException:
                with self._lock:  # keep renewing what was not handed back; try again later
                    self._ready.extendleft(reversed(unrunnable[index:]))
                raise
        logger.warning(
            "jobq worker pool %s: every thread is stuck in a task past its timeout; handed "
            "back %d jobs waiting for one",
            self.name,
            len(unrunnable),
        )

    def _runnable_threads(self) -> int:
        """Threads that can take a job now or once their task returns. Lock held."""
        stuck = sum(1 for attempt in self._running if attempt.stuck_since is not None)
        return self.concurrency - stuck

    def _claim(self, now: float) -> bool:
        with self._lock:
            if self._runnable_threads() <= 0:
                return False
            free = self.concurrency + self._prefetch_now() - len(self._ready) - len(self._running)
        free = min(free, _MAX_CLAIM)
        if free <= 0:
            return False
        told, self._told = self._told, False
        if not (self._backlog or told) and not self.queue.storage.has_runnable(
            self.queues, now=now
        ):
            return False
        limited_at_most = None
        if self.queue.task_limits:
            # Limited jobs only for idle threads: a claim counts as a start, so
            # they must not wait behind others in the ready list.
            with self._lock:
                limited_at_most = max(0, self.concurrency - len(self._running) - len(self._ready))
        jobs = claim(
            self.queue,
            self.queues,
            owner=self.owner,
            now=now,
            limit=free,
            limited_at_most=limited_at_most,
        )
        self._backlog = len(jobs) == free
        if jobs:
            attempts = [Attempt(self.queue, job) for job in jobs]  # outside the workers' lock
            with self._lock:
                self._ready.extend(attempts)
                self._has_work.notify(len(attempts))
        return len(jobs) == free

    def _prefetch_now(self) -> int:
        """Jobs to claim ahead of the threads. Lock held."""
        if not self._auto_prefetch:
            return self.prefetch
        # Short jobs: claim about 20 ms of work per thread ahead (at most 256 jobs),
        # so one transaction serves many jobs; long jobs: `concurrency` ahead.
        ahead = int(_AHEAD_SECONDS / max(self._job_seconds, 1e-6))
        return max(self.prefetch, min(_MAX_CLAIM - self.concurrency, ahead * self.concurrency))

    def _flush(self, now: float) -> None:
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
        if not outcomes:
            return
        try:
            record(self.queue, outcomes, now)
        except BaseException:
            with self._lock:  # keep what was not recorded; the next flush tries again
                self._outcomes[:0] = outcomes
            raise

    def _held(self) -> list[Attempt]:
        """The attempts whose leases the heartbeat renews."""
        with self._lock:
            held = [a for a in itertools.chain(self._ready, self._running) if not a.abandoned]
            held += [a for a, _ in self._outcomes if not a.lost]
        return held

    def _heard(self, result: RenewResult, held: Sequence[Attempt]) -> None:
        """The heartbeat learnt of cancels requested or leases lost among ``held``."""
        with self._lock:
            for attempt in held:
                if attempt.job.id in result.cancel_requested:
                    attempt.context.request_cancel()
                if attempt.job.id in result.lost:
                    attempt.lost = True
                    if attempt in self._ready:
                        self._ready.remove(attempt)
            self._outcomes = [(a, o) for a, o in self._outcomes if not a.lost]

    def _expire_overdue(self, now: float) -> None:
        """Mark attempts past their deadline as timed out. Their threads cannot be
        stopped, so each keeps its lease (renewed), its slot in this pool and in its
        task's ``concurrency_limit``; the failure is recorded when it returns, or
        when the pool gives up on it as it stops."""
        with self._lock:
            for attempt in self._running:
                if not attempt.overdue(now):
                    continue
                job = attempt.job
                task = self.queue.tasks.get(job.name)
                assert task is not None
                attempt.time_out(task, self.name)
        self._hand_back_unrunnable(now)

    def __repr__(self) -> str:
        return (
            f"<WorkerPool {self.name} concurrency={self.concurrency} queues={list(self.queues)} "
            f"{'alive' if self.is_alive else 'stopped'}>"
        )
