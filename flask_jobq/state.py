"""What the extension keeps for each app: its queue, its worker pool, its signals.

A :class:`JobQState` lives at ``app.extensions["jobq"]``; :func:`state_for`
finds the current app's. The state starts and stops the app's pool in this
process; *when* that happens (first request, after ``fork()``, on SIGTERM) is
:mod:`flask_jobq.lifecycle`'s job.

Rule: imports the ``jobq`` core, Flask and :mod:`flask_jobq.signals` only; never
the extension, its lifecycle hooks, views or command line.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any, cast

from flask import Flask, current_app, has_app_context

import jobq
from jobq import defaults
from jobq import signals as core_signals

from . import signals

EXTENSION_KEY = "jobq"
"""The key of the app's :class:`JobQState` in ``app.extensions``."""

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
    :ivar queue: the app's :class:`jobq.DurableQueue`.
    :ivar concurrency: ``JOBQ_CONCURRENCY``.
    :ivar queues: ``JOBQ_QUEUES`` (None: the queues of the registered tasks).
    :ivar start_automatically: ``JOBQ_START_WORKERS``.

    ``default_monitor_auth`` returns the callback used when ``JOBQ_MONITOR_AUTH``
    is None (the extension's :meth:`~flask_jobq.JobQ.monitor_auth`).
    """

    def __init__(
        self,
        app: Flask,
        queue: jobq.DurableQueue,
        *,
        concurrency: int,
        queues: Collection[str] | None,
        start_automatically: bool,
        schedules: Mapping[str, Mapping[str, Any]] | None = None,
        default_monitor_auth: Callable[[], Callable[[], bool] | None] | None = None,
    ) -> None:
        self.app = app
        self.queue = queue
        self.concurrency = concurrency
        self.queues = queues
        self.start_automatically = start_automatically
        self._schedules = dict(schedules or {})
        self._default_monitor_auth = default_monitor_auth
        # Reentrant: the SIGTERM handler may stop workers while the main thread holds it.
        self._lock = threading.RLock()
        self._pool: jobq.WorkerPool | None = None
        self._pool_pid = 0  # the process that started _pool; another one must start its own
        self._closed = False
        self._relays: list[Callable[..., None]] = []  # blinker holds receivers weakly

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
            self.declare_schedules()
            self._pool = self.queue.start_workers(self.concurrency, queues=self.queues)
            self._pool_pid = os.getpid()
            return self._pool

    def declare_schedules(self) -> None:
        """Declare the schedules of ``JOBQ_SCHEDULES`` on the queue (done when workers
        start: by then the tasks they name are registered). Raises
        :class:`jobq.UnknownTask` for a task that is not."""
        for name, options in self._schedules.items():
            if name not in self.queue.declared_schedules:
                options = dict(options)
                self.queue.schedule(options.pop("task"), name=name, **options)

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
        for (core_signal, _), relay in zip(_RELAYED, self._relays, strict=True):
            core_signal.disconnect(relay, sender=self.queue)
        self._relays.clear()
        try:
            if jobq.default_queue() is self.queue:
                jobq.configure(None)
        except jobq.NotConfigured:
            pass
        self.queue.close()

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

    def connect_signals(self) -> None:
        """Re-send the queue's core signals as :mod:`flask_jobq.signals`, the app as sender."""
        app = self.app
        for core_signal, flask_signal in _RELAYED:

            def relay(_queue: object, _signal: Any = flask_signal, **kwargs: Any) -> None:
                if _signal.receivers:
                    core_signals.emit(_signal, app, **kwargs)

            self._relays.append(relay)
            core_signal.connect(relay, sender=self.queue, weak=True)

    def around_job(self, call: Callable[[], Any]) -> Any:
        """Run a job's ``call`` inside the app's application context."""
        with self.app.app_context():
            return call()

    def __repr__(self) -> str:
        return f"<JobQState app={self.app.name!r} queue={self.queue!r} pool={self.pool!r}>"


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
