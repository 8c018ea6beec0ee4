"""What the extension keeps for each app: its queue, its worker pool, its signals.

A :class:`JobQState` lives at ``app.extensions["jobq"]``; :func:`state_for`
finds the current app's. The state starts and stops the app's pool in this
process; *when* that happens (first request, after ``fork()``, on SIGTERM) is
:mod:`flask_jobq.lifecycle`'s job.

Rule: imports the ``jobq`` core, Flask, :mod:`flask_jobq.signals` and
:mod:`flask_jobq.config` only; never the extension, its lifecycle hooks, views or
command line.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Collection, Iterable
from typing import Any, cast

from flask import Flask, current_app, has_app_context

import jobq
from jobq import defaults
from jobq import signals as core_signals

from . import signals
from .config import JobQConfig

logger = logging.getLogger("flask_jobq.extension")  # the logger's name users configure

EXTENSION_KEY = "jobq"
"""The key of the app's :class:`JobQState` in ``app.extensions``."""

DEFAULT_DATABASE = "jobq.db"
"""The database file in the instance folder when ``JOBQ_DATABASE`` is not set."""

STOP_TIMEOUT = defaults.STOP_GRACE_SECONDS
"""Seconds running jobs get to finish when workers stop (at exit, on SIGTERM)."""

_RELAYED = (
    (core_signals.job_enqueued, signals.job_enqueued),
    (core_signals.job_started, signals.job_started),
    (core_signals.job_succeeded, signals.job_succeeded),
    (core_signals.job_failed, signals.job_failed),
    (core_signals.job_retrying, signals.job_retrying),
    (core_signals.job_cancelled, signals.job_cancelled),
    (core_signals.job_lease_expired, signals.job_lease_expired),
    (core_signals.worker_started, signals.worker_started),
    (core_signals.worker_stopped, signals.worker_stopped),
)


class JobQState:
    """What the extension keeps for one app, at ``app.extensions["jobq"]``.

    :ivar app: the Flask app.
    :ivar settings: the app's :class:`~flask_jobq.config.JobQConfig`, checked by
        ``init_app`` and read again from ``app.config`` when the queue opens.

    The queue opens on first use (:attr:`queue`), not in ``init_app``: settings
    changed after ``create_app()``, such as ``TESTING`` in a test, still count.
    ``default_monitor_auth`` returns the callback used when ``JOBQ_MONITOR_AUTH``
    is None (the extension's :meth:`~flask_jobq.JobQ.monitor_auth`); ``tasks``
    are the extension's tasks, added to the queue when it opens.
    """

    def __init__(
        self,
        app: Flask,
        settings: JobQConfig,
        *,
        tasks: Iterable[jobq.Task[Any, Any]] = (),
        default_monitor_auth: Callable[[], Callable[[], bool] | None] | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self._tasks = tasks
        self._default_monitor_auth = default_monitor_auth
        # Reentrant: the SIGTERM handler may stop workers while the main thread holds it.
        self._lock = threading.RLock()
        self._queue: jobq.DurableQueue | None = None
        self._temporary_folder: str | None = None
        self._pool: jobq.WorkerPool | None = None
        self._pool_pid = 0  # the process that started _pool; another one must start its own
        self._closed = False
        self._relays: list[Callable[..., None]] = []  # blinker holds receivers weakly
        self._metrics: Any = None  # a jobq.metrics.MetricsConnection when JOBQ_METRICS

    @property
    def queue(self) -> jobq.DurableQueue:
        """The app's :class:`jobq.DurableQueue`, opened on first use.

        Opening reads the settings again (:class:`~flask_jobq.config.JobQConfig`),
        picks the database (``JOBQ_DATABASE``; when unset, ``jobq.db`` in the
        instance folder, or a temporary database removed at exit for an app whose
        ``app.testing`` is true), registers the extension's tasks, installs the
        configured handlers and stores ``JOBQ_SCHEDULES``. Raises RuntimeError after
        :meth:`close`, and what opening the database raises.
        """
        queue = self._queue
        if queue is not None:
            return queue
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the jobq state of app {self.app.name!r} is closed")
            if self._queue is None:
                self._queue = self._open()
            return self._queue

    @property
    def opened(self) -> bool:
        """True once the queue was opened (and until :meth:`close`)."""
        return self._queue is not None and not self._closed

    @property
    def concurrency(self) -> int:
        """``JOBQ_CONCURRENCY``."""
        return self.settings.concurrency

    @property
    def queues(self) -> Collection[str] | None:
        """``JOBQ_QUEUES`` (None: the queues of the registered tasks)."""
        return self.settings.queues

    @property
    def start_automatically(self) -> bool:
        """Whether workers start by themselves in a serving process: ``JOBQ_START_WORKERS``
        and the app is not testing (``app.testing``, read now)."""
        return self.settings.start_workers and not self.app.testing

    def _open(self) -> jobq.DurableQueue:
        settings = self.settings = JobQConfig.from_app(self.app)
        location = settings.database
        if location is None and self.app.testing:
            self._temporary_folder = tempfile.mkdtemp(prefix="jobq-testing-")
            atexit.register(shutil.rmtree, self._temporary_folder, ignore_errors=True)
            location = os.path.join(self._temporary_folder, "jobq.db")
        elif location is None:
            location = os.path.join(self.app.instance_path, DEFAULT_DATABASE)
        options: dict[str, Any] = {} if settings.driver is None else {"driver": settings.driver}
        queue = jobq.DurableQueue(
            location,
            synchronous=settings.synchronous,
            lease_seconds=settings.lease_seconds,
            poll_interval=settings.poll_interval,
            retention=settings.retention,
            inline=settings.inline,
            **options,
        )
        try:
            queue.around_job = self.around_job
            for task in self._tasks:
                queue.registry.add(task)
            for module_name, handler_settings in settings.handlers.items():
                handler = importlib.import_module(f"jobq.handlers.{module_name}")
                handler.install(queue, handler_settings)
            self._declare_schedules(queue)
        except BaseException:
            queue.close()
            raise
        self._connect_signals(queue)
        if settings.metrics:
            from jobq.metrics import connect_metrics  # the prometheus extra, only when asked

            self._metrics = connect_metrics(queue)
        return queue

    def open_queue_as_default(self) -> jobq.DurableQueue:
        """:attr:`queue`, as the process's default queue opener (``jobq.configure``): the
        queue opens when ``jobq.submit`` first needs it, not before."""
        return self.queue

    def become_default(self) -> None:
        """Make this app's queue the process's default (``jobq.configure``), opened when
        first needed."""
        jobq.configure(self.open_queue_as_default)

    def stop_being_default(self) -> None:
        """Forget this app's queue as the process's default, if it still is."""
        before = jobq.configure(None)
        if before is not None and before != self.open_queue_as_default:
            jobq.configure(before)  # another app's: put it back

    def add_task(self, task: jobq.Task[Any, Any]) -> None:
        """Register ``task`` on the queue if it is open (else it is added when it opens)."""
        with self._lock:
            if self._queue is not None:
                self._queue.registry.add(task)

    @property
    def pool(self) -> jobq.WorkerPool | None:
        """The worker pool running in this process, or None."""
        pool = self._pool
        if pool is None or self._pool_pid != os.getpid():
            return None
        return pool

    def start_workers(self) -> jobq.WorkerPool:
        """Start this app's worker pool in this process unless it runs already; return it.

        Raises RuntimeError after :meth:`close`.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the jobq state of app {self.app.name!r} is closed")
            pool = self.pool
            if pool is not None and pool.is_alive:
                return pool
            self._pool = self.queue.start_workers(self.concurrency, queues=self.queues)
            self._pool_pid = os.getpid()
            return self._pool

    def _declare_schedules(self, queue: jobq.DurableQueue) -> None:
        """Declare (and so store) the schedules of ``JOBQ_SCHEDULES``. Raises
        :class:`jobq.UnknownTask` for a task that is not registered."""
        for name, options in self.settings.schedules.items():
            if name not in queue.declared_schedules:
                options = dict(options)
                queue.schedule(options.pop("task"), name=name, **options)

    def stop_workers(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop this process's pool of this app, giving running jobs ``timeout`` seconds.

        Returns True if no job was still running then (see
        :meth:`jobq.WorkerPool.stop`). Does nothing and returns True when no pool
        runs. With ``JOBQ_START_WORKERS``, the next request starts a new pool
        unless the state is closed.
        """
        with self._lock:
            pool, self._pool = self.pool, None
            self._pool_pid = 0
        return True if pool is None else pool.stop(timeout)

    def close(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the workers, stop re-sending signals and close the database connections.

        The app's queue cannot be used afterwards; neither can ``jobq.submit``
        if this queue was the default one (it is forgotten). Closing again does
        nothing.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.stop_workers(timeout)
        self.stop_being_default()  # opened or not
        queue, self._queue = self._queue, None
        if queue is not None:
            for (core_signal, _), relay in zip(_RELAYED, self._relays, strict=True):
                core_signal.disconnect(relay, sender=queue)
            self._relays.clear()
            if self._metrics is not None:
                self._metrics.disconnect()
                self._metrics = None
            queue.close()
        if self._temporary_folder is not None:
            shutil.rmtree(self._temporary_folder, ignore_errors=True)
            self._temporary_folder = None

    def monitor_auth(self) -> Callable[[], bool] | None:
        """The monitor's authorisation callback now: ``JOBQ_MONITOR_AUTH``, read at
        each call, or when that is None the extension's (``@jobq_ext.monitor_auth``)."""
        check: Callable[[], bool] | None = self.app.config.get("JOBQ_MONITOR_AUTH")
        if check is None and self._default_monitor_auth is not None:
            check = self._default_monitor_auth()
        return check

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def runs_workers_here(self) -> bool:
        """True when this process started this app's pool (it may have stopped since);
        False in a child forked from the process that did, until it starts its own."""
        return self._pool_pid == os.getpid()

    def reset_after_fork(self) -> None:
        """Forget the lock in a child process just forked: a lock another thread held
        at ``fork()`` stays held in the child forever."""
        self._lock = threading.RLock()

    def _connect_signals(self, queue: jobq.DurableQueue) -> None:
        """Re-send the queue's core signals as :mod:`flask_jobq.signals`, the app as sender."""
        app = self.app
        for core_signal, flask_signal in _RELAYED:

            def relay(_queue: object, _signal: Any = flask_signal, **kwargs: Any) -> None:
                if _signal.receivers:
                    core_signals.emit(_signal, app, **kwargs)

            self._relays.append(relay)
            core_signal.connect(relay, sender=queue, weak=True)

    def around_job(self, call: Callable[[], Any]) -> Any:
        """Run a job's ``call`` inside the app's application context."""
        with self.app.app_context():
            return call()

    def __repr__(self) -> str:
        return f"<JobQState app={self.app.name!r} queue={self._queue!r} pool={self.pool!r}>"


def state_for(app: Flask | None = None) -> JobQState:
    """The :class:`JobQState` of ``app`` (default: ``current_app``).

    Raises RuntimeError outside an application context when no app is given, or
    when the extension was not initialised on the app.
    """
    if app is None:
        if not has_app_context():
            raise RuntimeError(
                "jobq needs an application context to find the app's queue: call this in a "
                "request, a CLI command, or inside 'with app.app_context():'"
            )
        app = cast(Flask, current_app._get_current_object())  # type: ignore[attr-defined]
    state = app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, JobQState):
        raise RuntimeError(
            f"the jobq extension is not initialised on app {app.name!r}. "
            "Did you forget to call 'jobq_ext.init_app(app)'?"
        )
    return state
