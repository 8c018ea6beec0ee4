"""DurableQueue: jobs kept in a database, run by worker threads, never lost.

The queue joins three things: a :class:`~jobq.storage.base.Storage` (where jobs
live), the task registry (what names mean) and the JSON codec (what arguments
look like stored). It imports the storage contract and the worker, never Flask;
the worker (:mod:`jobq.worker`) sees the queue only as a narrow protocol.
"""

from __future__ import annotations

import builtins
import os
import threading
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Literal, ParamSpec, TypeVar

from . import backoff as backoffs
from . import by_name, defaults, expiry, signals, tracing_hooks, transactional
from .clock import WALL_CLOCK, EpochClock
from .errors import JobNotFound as JobNotFound  # its home before errors.py; still importable here
from .errors import PayloadError, UnknownTask
from .job import Job
from .limit_keys import LimitKey
from .queue_batches import QueueBatches
from .queue_bulk import QueueBulk
from .queue_chains import QueueChains
from .queue_control import QueueControl
from .queue_schedules import QueueSchedules
from .queue_transactions import QueueTransactions
from .retention import Retention as Retention
from .retry_rules import DiscardOn, RetryOn
from .schedules import Schedule
from .storage import open_storage
from .storage.base import NewJob, Storage, TaskLimit
from .task_registry import TaskRegistry
from .tasks import DEFAULT_MAX_ATTEMPTS, ArgumentCheck, JobOptions, NamedTask, Task, store_calls
from .tasks import DEFAULT_QUEUE as DEFAULT_QUEUE
from .validate import check_count, check_seconds
from .worker import WorkerPool, run_inline

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_MAX_PAYLOAD = defaults.MAX_PAYLOAD_BYTES
"""Default largest job arguments, in bytes of JSON."""


class DurableQueue(
    QueueSchedules, QueueControl, QueueBulk, QueueBatches, QueueChains, QueueTransactions
):
    """Persistent jobs: enqueue now, run in worker threads, survive restarts and crashes.

    ::

        queue = jobq.DurableQueue("jobs.db")

        @queue.task(max_attempts=5)
        def send_welcome(user_id: int) -> None: ...

        send_welcome.enqueue(42)          # stored before this returns
        pool = queue.start_workers(concurrency=4)

    :param location: a SQLite file path (created readable by its owner only,
        with any missing folder above it, ``0o700``; pass a
        :class:`~jobq.storage.SQLiteStorage` with ``file_mode=`` for others),
        a ``sqlite:///path`` URL, a ``postgresql://`` URL (the ``jobq[postgres]``
        extra; for workers on several hosts), a ``redis://`` or ``rediss://`` URL
        (the ``jobq[redis]`` extra; likewise, with jobq's options ``prefix`` and
        ``durability`` in its query, see :func:`jobq.storage.open_storage`), or a
        :class:`~jobq.storage.base.Storage`.
    :param driver: SQLite only: ``"auto"`` (default) uses apsw when it is
        installed (``pip install "jobq[apsw]"``: a bundled SQLite free of the
        WAL-reset bug that can corrupt a file several processes write), else
        the standard ``sqlite3`` module; ``"sqlite3"`` or ``"apsw"`` forces one.
        Within one process, touch the file through one SQLite library only:
        two copies of SQLite ignore each other's locks, so do not also open it
        with the ``sqlite3`` module while jobq uses apsw (``driver="sqlite3"``
        if you must).
    :param synchronous: SQLite's durability setting: ``"NORMAL"`` (default)
        never loses a committed job to a crash or ``kill -9``, but may lose the
        last transactions to a power cut; ``"FULL"`` survives that too, at a
        cost in write speed. (PostgreSQL follows the server's settings.)
    :param lease_seconds: how long a claimed job is reserved for its worker
        without a heartbeat; a worker that dies loses its jobs after this
        (default 30, > 0). Heartbeats renew it every third of it.
    :param poll_interval: seconds between looks for jobs enqueued by other
        processes while idle (default 0.01). Jobs enqueued in this process
        wake a worker at once; so do other processes' on PostgreSQL (through
        LISTEN/NOTIFY) and, on one host, on SQLite (its wake-up channel, see
        ``JOBQ_SQLITE_WAKEUP``). On PostgreSQL idle polling then slows to every
        0.1 s; SQLite keeps it, for processes without the channel.
    :param retention: how long finished jobs are kept (:class:`Retention`).
    :param inline: run each job in the enqueueing thread as soon as it is
        stored, for tests and scripts (default False).
    :param unknown_tasks: what a worker does with a job whose task is not
        registered in its process: ``"fail"`` it with a clear error (default),
        or ``"wait"``: put it back for a minute, without using an attempt, for
        a worker that knows it (e.g. during a rolling deploy).
    :param max_payload_bytes: the largest job arguments accepted, in bytes of
        JSON (default 1 MiB; None for no limit). Larger ones raise
        :class:`~jobq.PayloadError` and nothing is stored: keep big data in a
        file or a table and pass its id.
    :param clock: wall clock for stored times; tests pass a FakeClock.
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | Storage,
        *,
        driver: Literal["auto", "sqlite3", "apsw"] = "auto",
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        lease_seconds: float = defaults.LEASE_SECONDS,
        poll_interval: float = defaults.POLL_INTERVAL,
        retention: Retention | None = None,
        inline: bool = False,
        unknown_tasks: Literal["fail", "wait"] = "fail",
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD,
        clock: EpochClock = WALL_CLOCK,
    ) -> None:
        check_seconds("lease_seconds", lease_seconds)
        check_seconds("poll_interval", poll_interval)
        self.storage = open_storage(location, driver=driver, synchronous=synchronous)
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.retention = retention if retention is not None else Retention()
        if unknown_tasks not in ("fail", "wait"):
            raise ValueError(f"unknown_tasks must be 'fail' or 'wait', got {unknown_tasks!r}")
        if max_payload_bytes is not None:
            check_count("max_payload_bytes", max_payload_bytes)
        self.inline = inline
        self.unknown_tasks = unknown_tasks
        self.max_payload_bytes = max_payload_bytes
        self.clock = clock
        self.registry = TaskRegistry(self)
        """The tasks registered on this queue (:meth:`task` is its door)."""
        self.tasks: dict[str, Task[Any, Any]] = self.registry.tasks
        """The registered tasks by name (the registry's own dict)."""
        self.around_job: Callable[[Callable[[], Any]], Any] | None = None
        """Wraps every job's call, e.g. in an application context (the Flask extension
        sets it). Receives a no-argument callable and must call it once."""
        self.extensions: dict[str, Any] = {}
        """Objects that add-ons keep per queue, by key (as Flask's ``app.extensions``);
        the ready-made handlers of :mod:`jobq.handlers` keep their settings here."""
        self.task_limits: dict[str, TaskLimit] = self.registry.limits
        """The limits of the registered tasks that have any, by task name."""
        self.declared_schedules: dict[str, Schedule] = {}
        """Schedules declared in this process (:meth:`schedule`); its workers fire them."""
        self._schedules_unstored = False  # a declaration found the database away
        self._pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()
        self._inline_running = threading.local()

    # -- registering tasks ---------------------------------------------------------

    def task(
        self,
        name: str | None = None,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff: float | backoffs.Backoff | None = None,
        priority: int = 0,
        queue: str = DEFAULT_QUEUE,
        timeout: float | None = None,
        concurrency_limit: int | None = None,
        rate_limit: str | tuple[int, float] | None = None,
        rate_limit_key: str | None = None,
        check: ArgumentCheck | None = None,
        retry_on: RetryOn | None = None,
        discard_on: DiscardOn | None = None,
        isolation: str = "thread",
        expires_in: float | None = None,
        limit_key: LimitKey | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function as a task: ``@queue.task()`` or ``@queue.task("name", ...)``.

        :param name: the name jobs refer to; default ``module.qualname``. Give a
            stable name if the function may move.
        :param max_attempts: attempts before the job fails for good (default 3, >= 1).
        :param backoff: delay before a retry: seconds, a callable
            ``backoff(attempt) -> seconds``, or None for exponential backoff with
            jitter (2 s, 4 s, 8 s ... capped at an hour).
        :param priority: default priority of its jobs (higher first; default 0).
        :param queue: default queue of its jobs (default ``"default"``).
        :param timeout: seconds an attempt may run (finite, > 0; default None: no
            limit) before it counts as failed
            with :class:`~jobq.TaskTimeout` and is retried by the usual rules.
            The thread cannot be stopped: until the function returns, the job
            stays ``processing`` with its lease, its worker slot and its place in
            ``concurrency_limit``, and ``WorkerPool.running()`` shows the thread
            as stuck; the failure is recorded when it returns.
        :param concurrency_limit: at most this many of its jobs run at once in
            the whole deployment (every worker of every process), e.g. 2 for a
            heavy report. Enforced through the database when jobs are claimed.
        :param rate_limit: at most this many of its jobs start in any window,
            across every process: ``"10/s"``, ``"100/m"``, ``"1000/h"``,
            ``"5/10s"`` or ``(count, seconds)``. For a provider's limit, such as
            "10 webhooks a second to example.com in total".
        :param rate_limit_key: tasks giving the same key share one rate window
            (default: the task's own name).
        :param check: a callable run at every enqueue of the task (``enqueue``,
            ``options(...).enqueue``, ``enqueue_many``, enqueue by name,
            ``schedule``), before anything is stored, with the call's arguments
            bound to the function's parameters (a mapping of parameter name to
            value, defaults filled in, after the signature and JSON checks). It
            raises ValueError for arguments that can never succeed; the enqueue
            then raises ValueError ``"cannot enqueue <name>: <its message>"`` and
            stores nothing. Default None.
        :param retry_on: exceptions retried by rules of their own (see
            :mod:`jobq.retry_rules` and the Retries guide): an exception class, a
            tuple of them, or a dict from a class (or a tuple of classes) to a
            :class:`~jobq.RetryRule` (``attempts``, ``backoff``) or to an attempt
            budget (an int, at most ``max_attempts``). The most specific class
            named (nearest in the exception's MRO) wins; exceptions no rule names
            are retried by ``max_attempts`` and ``backoff``. Default None.
        :param discard_on: exceptions that end the job at once, without retries:
            an exception class or a tuple of them. The job ends ``failed`` with
            its error recorded and a note saying it was not retried. Never
            applies to :class:`~jobq.TransientError`. Default None.
        :param isolation: ``"thread"`` (default): attempts run in a worker thread.
            ``"process"``: each attempt runs in a child process of the worker (from
            a small pool of warm ones, see :mod:`jobq.worker.isolation`), which is
            killed when ``timeout`` passes (the attempt fails with
            :class:`~jobq.TaskTimeout` and its slot is free again) or when the job
            is cancelled; a child that crashes (segfault, ``os._exit``, OOM killer)
            fails only that attempt (:class:`~jobq.ChildProcessDied`). Arguments,
            results and errors cross as JSON. Needs ``os.fork`` (Linux, macOS).
        :param expires_in: default expiry of its jobs: seconds (> 0) after a job
            is due past which it must not start; it ends ``cancelled`` with the
            error ``Expired`` instead (see :mod:`jobq.expiry`). An enqueue's own
            ``expires_in``/``expires_at`` replaces it. Default None: no expiry.
        :param limit_key: makes ``concurrency_limit`` and ``rate_limit`` hold per
            key rather than for the task as a whole: a callable receiving the
            call's arguments as the function does (``lambda account_id, **_:
            account_id``) or the name of a parameter (``"account_id"``), giving a
            str, an int or None (jobs without a key share one group). Computed at
            enqueue and stored on the job (``Job.limit_key``); a callable that
            raises, or gives another type, fails the enqueue with ValueError or
            TypeError and stores nothing. E.g. ``concurrency_limit=1,
            limit_key="account_id"``: one job per account at a time while other
            accounts go on. Default None.

        Declare the same limits in every process that runs the task's jobs.
        Raises ValueError or TypeError naming a bad option (e.g. ``timeout="5"``
        is a ValueError), ConfigurationError if another function already has the
        name.
        """
        return self.registry.task(
            name,
            max_attempts=max_attempts,
            backoff=backoff,
            priority=priority,
            queue=queue,
            timeout=timeout,
            concurrency_limit=concurrency_limit,
            rate_limit=rate_limit,
            rate_limit_key=rate_limit_key,
            check=check,
            retry_on=retry_on,
            discard_on=discard_on,
            isolation=isolation,
            expires_in=expires_in,
            limit_key=limit_key,
        )

    def get_task(self, task_or_name: Task[Any, Any] | NamedTask | str) -> Task[Any, Any]:
        """The registered task with this name (a Task is returned as it is; anything
        else with a ``name``, such as a Flask handler's task, is looked up by it).
        Raises :class:`~jobq.UnknownTask`."""
        if isinstance(task_or_name, Task):
            return task_or_name
        name = task_or_name if isinstance(task_or_name, str) else task_or_name.name
        task = self.registry.get(name)
        if task is None:
            raise UnknownTask(name, list(self.tasks))
        return task

    # -- enqueueing ----------------------------------------------------------------

    def enqueue(
        self, task_or_name: Task[Any, Any] | NamedTask | str, /, *args: Any, **kwargs: Any
    ) -> Job:
        """Store a job running a registered task with these arguments; return it.

        Options (priority, delay, unique key ...) go through the task:
        ``queue.get_task(name).options(delay=60).enqueue(...)``. Raises
        :class:`~jobq.UnknownTask`, or TypeError for arguments that do not fit
        the signature or are not JSON; nothing is written then.
        """
        task = self.get_task(task_or_name)
        return self.enqueue_job(task.job_for(args, kwargs), expires_in=task.settings.expires_in)

    def enqueue_many(
        self,
        task_or_name: Task[Any, Any] | NamedTask | str,
        calls: Iterable[Sequence[Any] | Mapping[str, Any]],
        **options: Any,
    ) -> list[int]:
        """Store one job per call, all in one transaction; return their ids.
        See :meth:`Task.enqueue_many`."""
        return store_calls(self.get_task(task_or_name), self, calls, JobOptions(**options))

    def enqueue_by_name(
        self,
        name: str,
        /,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Job:
        """Store a job running the task called ``name``, registered in this process
        or not (web code that does not import the worker's tasks); return it.

        ``args`` (a list) and ``kwargs`` (a dict) must be JSON; they are checked
        against the function's signature only if this process registered the task
        (the worker that runs it checks them then, and fails the job at once with
        ``ArgumentError`` when they do not fit). ``options`` are those of
        ``Task.options``: ``priority``, ``delay``, ``run_at``, ``max_attempts``,
        ``unique_key``, ``queue`` (default: the task's own if registered here,
        else ``"default"``), ``expires_in``, ``expires_at``. Raises TypeError or
        ValueError naming what is wrong, storing nothing.
        """
        job_options = by_name.job_options(options)
        task = self.registry.get(name) if isinstance(name, str) else None
        job = by_name.new_job(task, name, args, kwargs, job_options)
        default = None if task is None else task.settings.expires_in
        return self.enqueue_job(
            job, delay=job_options.start_delay, expires_in=job_options.expiry_after(default)
        )

    def enqueue_job(
        self, job: NewJob, *, delay: float | None = None, expires_in: float | None = None
    ) -> Job:
        """Store a job a task made (:meth:`Task.new_job <jobq.Task.new_job>`), starting
        ``delay`` seconds from now if given, expiring ``expires_in`` seconds from now
        if given; return it as stored.

        The door under every ``enqueue``: raises :class:`~jobq.PayloadError` for
        arguments over ``max_payload_bytes``, storing nothing. Emits
        ``job_enqueued`` for a new job, and runs it at once in inline mode.
        """
        self._check_size(job.name, job.payload)
        tracer = tracing_hooks.active
        if tracer is not None:
            return tracer.enqueue(job, lambda traced: self._store(traced, delay, expires_in))
        return self._store(job, delay, expires_in)

    def _store(self, job: NewJob, delay: float | None, expires_in: float | None = None) -> Job:
        now = self.clock.now()
        if expires_in is not None or job.expires_at is not None:
            job = expiry.timed(job, now, delay, expires_in)
        elif delay is not None:
            job = job._replace(run_at=now + delay)
        if (transaction := transactional.current(self)) is not None:
            return transaction.store(job, now)
        enqueued = self.storage.enqueue(job, now=now)
        stored = enqueued.job
        self._wake(stored.queue)
        if enqueued.created and signals.job_enqueued.receivers:
            signals.emit(signals.job_enqueued, self, job=stored)
        if self.inline:
            self.run_until_empty()
            stored = self.get(stored.id)
        return stored

    def enqueue_jobs(
        self,
        template: NewJob,
        payloads: Iterable[str],
        *,
        delay: float | None = None,
        expires_in: float | None = None,
        limit_keys: Sequence[str | None] | None = None,
    ) -> builtins.list[int]:
        """Store one job like ``template`` per payload, all in one transaction (none
        if any payload is refused); return their ids. ``delay`` as in
        :meth:`enqueue_job`; ``limit_keys``, when given, each job's ``limit_key`` in
        order. Raises :class:`~jobq.PayloadError` as it does."""
        now = self.clock.now()
        checked = [self._check_size(template.name, payload) for payload in payloads]
        if not checked:
            return []
        if expires_in is not None or template.expires_at is not None:
            template, delay = expiry.timed(template, now, delay, expires_in), None
        tracer = tracing_hooks.active
        if tracer is not None:
            return tracer.enqueue_many(
                template, checked, lambda p: self._store_many(template, p, now, delay, limit_keys)
            )
        return self._store_many(template, checked, now, delay, limit_keys)

    def _store_many(
        self,
        template: NewJob,
        checked: builtins.list[str],
        now: float,
        delay: float | None,
        limit_keys: Sequence[str | None] | None = None,
    ) -> builtins.list[int]:
        if delay is not None:
            template = template._replace(run_at=now + delay)
        if (transaction := transactional.current(self)) is not None:
            return transaction.store_many(template, checked, limit_keys, now)
        if limit_keys is not None:
            jobs = zip(checked, limit_keys, strict=True)
            ids = self.storage.enqueue_many(
                [template._replace(payload=p, limit_key=k) for p, k in jobs], now=now
            )
        elif template.unique_key is None:
            ids = self.storage.enqueue_payloads(template, checked, now=now)
        else:
            ids = self.storage.enqueue_many(
                [template._replace(payload=p) for p in checked], now=now
            )
        if ids:
            self._wake(template.queue)
            if self.inline:
                self.run_until_empty()
        return ids

    def _check_size(self, task_name: str, payload: str) -> str:
        limit = self.max_payload_bytes
        # len() counts characters: bytes only need counting when it is close.
        if limit is not None and len(payload) * 4 > limit and len(payload.encode()) > limit:
            raise PayloadError(
                f"the arguments of {task_name} take {len(payload.encode()):,} bytes as JSON, "
                f"over this queue's limit of {limit:,} (max_payload_bytes); keep large data "
                "in a file or a table and pass its id",
                "payload",
            )
        return payload

    def _wake(self, queue_name: str) -> None:
        if self._pools:  # a WeakSet's len() is far cheaper than iterating it
            for pool in list(self._pools):
                pool.wake(queue_name)

    # -- running -------------------------------------------------------------------

    def start_workers(
        self,
        concurrency: int = defaults.CONCURRENCY,
        *,
        queues: Collection[str] | None = None,
        prefetch: int | None = None,
        name: str | None = None,
    ) -> WorkerPool:
        """Start a pool of ``concurrency`` worker threads in this process; return it.

        ``concurrency``: jobs run at once by this pool (>= 1, default 4; change
        it later with ``pool.set_concurrency(n)``). ``queues``: names to take
        jobs from (default: the queues of the registered tasks, or
        ``["default"]``). ``prefetch``: extra jobs claimed ahead so threads
        never wait for the database (default ``concurrency``). ``name``: the
        pool's name in thread names, logs and lease owners
        (``host:pid:name``; default ``pool1``, ``pool2``, ...). Stop it with
        ``pool.stop(timeout)``; it also stops at interpreter exit.
        """
        pool = WorkerPool(
            self, concurrency=concurrency, queues=queues, prefetch=prefetch, name=name
        )
        self._pools.add(pool)
        pool.start()
        return pool

    def run_until_empty(
        self, *, queues: Collection[str] | None = None, max_jobs: int | None = None
    ) -> int:
        """Run every due job in this thread, one after another, until none is left.

        For tests and scripts: jobs that retry later, or are scheduled later,
        are not waited for (advance the clock and call again). Returns how many
        attempts ran. Reentrant calls (from a job) return 0 at once.
        """
        if getattr(self._inline_running, "active", False):
            return 0
        self._inline_running.active = True
        try:
            return run_inline(self, queues=queues, max_jobs=max_jobs)
        finally:
            self._inline_running.active = False

    def queue_names(self) -> builtins.list[str]:
        """Queues the registered tasks use, or ``["default"]`` when none is registered."""
        return sorted({task.queue for task in self.tasks.values()}) or [DEFAULT_QUEUE]

    def close(self) -> None:
        """Stop this queue's worker pools, close what the handlers of
        :mod:`jobq.handlers` keep open (SMTP connections, HTTP sessions), and close
        the database connections."""
        for pool in list(self._pools):
            pool.stop()
        for extension in self.extensions.values():
            close = getattr(extension, "close", None)
            if callable(close):
                close()
        self.storage.close()

    def __repr__(self) -> str:
        where = getattr(self.storage, "path", self.storage)
        return f"<DurableQueue {where} tasks={len(self.tasks)}>"
