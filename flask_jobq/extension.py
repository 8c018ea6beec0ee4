"""The Flask extension: one :class:`jobq.DurableQueue` and worker pool per app.

``JobQ`` holds no app (Flask's extension guide): each app's queue, pool and
settings live in a :class:`JobQState` at ``app.extensions["jobq"]``, so one
extension object serves any number of apps, each with its own database file.
Depends on the ``jobq`` core; the core never imports Flask.

When workers start
------------------
A pool is a set of threads, and threads do not survive ``fork()``, so the pool
is started by the process that serves requests, not by whoever created the app:

- on the first request each process handles (a ``before_request`` hook that
  compares ``os.getpid()`` with the pid that started the pool). That covers
  gunicorn with or without ``--preload`` (the master creates the app but never
  serves, each forked worker starts its own pool on its first request), uWSGI,
  ``multiprocessing`` children, and it never starts threads in ``flask shell``,
  ``flask db upgrade`` or a test that only builds the app;
- at once in ``init_app`` in the serving child of the Werkzeug reloader
  (``flask run --debug``): ``werkzeug.serving.is_running_from_reloader()`` is
  true only there. The reloader's parent also imports the app (Flask loads it
  to report errors early) but only watches files and restarts the child, so it
  never starts workers;
- whenever :meth:`JobQ.start_workers` is called, e.g. in a process that serves
  no requests, or from gunicorn's ``post_worker_init`` hook to start before
  the first request (a gunicorn worker that has served nothing yet runs no jobs;
  the others do).

Threads are not started from an ``os.register_at_fork`` hook: it would run in
every fork of the process (a daemonising library, a ``multiprocessing``
helper), before the server has set up its child (signals, hooks), while the
first request is the moment the process is known to serve the app.

A pool inherited through ``fork()`` has no threads in the child; it is
forgotten there and a new one starts as above. ``JOBQ_START_WORKERS = False``
turns the automatic starts off (for a separate worker process).

When workers stop
-----------------
At interpreter exit the core stops every pool, letting running jobs finish (30
s at most) and handing back unstarted ones. Ctrl-C (KeyboardInterrupt) ends
that way, and so does SIGTERM under gunicorn, whose workers handle it and exit
normally. Python's default for SIGTERM is to die at once, without atexit, so
where its handler is still the default when ``init_app`` runs in the main
thread (``flask run``, ``python app.py``, the master of gunicorn ``--preload``
before gunicorn installs its own), ``init_app`` installs one that stops this
process's pools the same way and then dies of SIGTERM as the default would
have (same exit status). A handler someone else installed is never replaced,
and one installed later replaces ours. A job still running when the process is
killed outright is not lost: its lease expires and another worker runs it again.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable, Collection, Mapping
from types import FrameType
from typing import Any, ParamSpec, TypeVar, cast

from flask import Flask, current_app, has_app_context
from werkzeug.serving import is_running_from_reloader

import jobq
from jobq import backoff as backoffs
from jobq import defaults
from jobq import signals as core_signals
from jobq.tasks import DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE, ArgumentCheck, TaskRegistry

from . import signals
from .config import HANDLERS as HANDLERS
from .config import JobQConfig
from .views import register_monitor

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger(__name__)

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

_states: weakref.WeakSet[JobQState] = weakref.WeakSet()  # every live app state of this process
_sigterm_lock = threading.Lock()
_sigterm_installed = False
_terminating = False  # set by our SIGTERM handler: requests must not start pools any more


class JobQState:
    """What the extension keeps for one app, at ``app.extensions["jobq"]``.

    :ivar app: the Flask app.
    :ivar queue: the app's :class:`jobq.DurableQueue`.
    :ivar concurrency: ``JOBQ_CONCURRENCY``.
    :ivar queues: ``JOBQ_QUEUES`` (None: the queues of the registered tasks).
    :ivar start_automatically: ``JOBQ_START_WORKERS``.
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
    ) -> None:
        self.app = app
        self.queue = queue
        self.concurrency = concurrency
        self.queues = queues
        self.start_automatically = start_automatically
        self._schedules = dict(schedules or {})
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
        _states.discard(self)

    def _before_request(self) -> None:
        if self._pool_pid != os.getpid() and not self._closed and not _terminating:
            self.start_workers()

    def _connect_signals(self) -> None:
        app = self.app
        for core_signal, flask_signal in _RELAYED:

            def relay(_queue: object, _signal: Any = flask_signal, **kwargs: Any) -> None:
                if _signal.receivers:
                    core_signals.emit(_signal, app, **kwargs)

            self._relays.append(relay)
            core_signal.connect(relay, sender=self.queue, weak=True)

    def _around_job(self, call: Callable[[], Any]) -> Any:
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


class FlaskTask(jobq.Task[P, R]):
    """A task declared on the extension; ``.enqueue`` uses the current app's queue.

    Made by :meth:`JobQ.task`, usually at import time, before any app exists.
    ``init_app`` adds it, as declared, to each app's queue. Calling it calls the
    function; ``.enqueue(...)``, ``.enqueue_many(...)`` and
    ``.options(...).enqueue(...)`` store the job in the queue of ``current_app``
    (raising RuntimeError outside an application context,
    :class:`jobq.UnknownTask` if that app's queue does not know it).
    """

    # Resolving the queue at call time lets one task object (and its
    # `.options(...)`) serve every app.
    @property
    def owner(self) -> jobq.DurableQueue:
        queue = state_for().queue
        if self.name not in queue.tasks:
            raise jobq.UnknownTask(self.name, list(queue.tasks))
        return queue

    def __repr__(self) -> str:
        return f"<FlaskTask {self.name} queue={self.queue!r} max_attempts={self.max_attempts}>"


class JobQ:
    """The jobq extension: a durable job queue and worker threads for each Flask app.

    ::

        jobq_ext = JobQ()

        @jobq_ext.task(max_attempts=5)
        def send_welcome(user_id: int) -> None:
            user = db.session.get(User, user_id)    # runs in an app context
            ...

        def create_app() -> Flask:
            app = Flask(__name__)
            jobq_ext.init_app(app)
            return app

        # in a view:
        send_welcome.enqueue(user.id)               # the current app's queue

    :param app: initialise this app at once (as :meth:`init_app` does), or
        None for the app-factory pattern.
    """

    def __init__(self, app: Flask | None = None) -> None:
        self._registry = TaskRegistry(task_class=FlaskTask, door="@jobq_ext.task")
        self._states: weakref.WeakSet[JobQState] = weakref.WeakSet()
        self._monitor_auth: Callable[[], bool] | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Give ``app`` its queue, register the extension's tasks on it, arrange workers.

        Configuration, read with ``app.config.setdefault`` (so the defaults are
        visible in ``app.config`` afterwards):

        ``JOBQ_DATABASE``
            SQLite file path, ``sqlite:///path`` URL, or ``postgresql://`` URL
            (the ``jobq[postgres]`` extra, for workers on several hosts). A
            relative path is relative to ``app.instance_path``. Default
            ``os.path.join(app.instance_path, "jobq.db")``. The file's folder
            (e.g. the instance folder) is created if missing.
        ``JOBQ_CONCURRENCY``
            worker threads in each serving process, >= 1. Default 4.
        ``JOBQ_QUEUES``
            names of the queues this app's workers take jobs from. Default None:
            the queues of the registered tasks (``["default"]`` if none).
        ``JOBQ_START_WORKERS``
            start workers in each process that serves the app (see the module
            documentation for when). Default True; False for apps whose jobs
            run in a separate worker process (``flask jobq worker``).
        ``JOBQ_LEASE_SECONDS``
            seconds a claimed job stays reserved without a heartbeat. Default 30.
        ``JOBQ_POLL_INTERVAL``
            seconds between looks for jobs enqueued by other processes while
            idle. Default 0.01.
        ``JOBQ_RETENTION``
            a :class:`jobq.Retention`, or None for its defaults (completed and
            cancelled jobs 7 days, failed 30). Default None.
        ``JOBQ_SYNCHRONOUS``
            ``"NORMAL"`` or ``"FULL"`` (see :class:`jobq.DurableQueue`). Default
            ``"NORMAL"``.
        ``JOBQ_DRIVER``
            ``"sqlite3"`` or ``"apsw"``. Default ``"sqlite3"``.
        ``JOBQ_SCHEDULES``
            recurring schedules by name, each a dict with ``task`` (a registered
            task name), ``cron`` or ``every``, and optionally ``tz``, ``args``,
            ``kwargs``, ``missed``, ``max_missed``, ``grace`` (the options of
            :meth:`jobq.DurableQueue.schedule`). Declared when workers start.
            Default ``{}``.
        ``JOBQ_EMAIL``, ``JOBQ_IMAGE``, ``JOBQ_WEBHOOK``
            settings of the ready-made handlers (a dict of the fields of
            :class:`jobq.handlers.email.EmailSettings`, ``ImageSettings`` or
            ``WebhookSettings``); when set, the handler is installed on the
            app's queue and :mod:`flask_jobq.handlers` enqueues to it. Default:
            not set.
        ``JOBQ_MONITOR_URL_PREFIX``
            URL path of the monitoring endpoints, starting with ``/``. Default
            ``"/jobq"``; None mounts no monitor.
        ``JOBQ_MONITOR_AUTH``
            a callable taking no arguments that returns True to allow a request
            to the monitor (it can read ``flask.request``); see also
            :meth:`monitor_auth`; :func:`flask_jobq.is_local_request` allows
            this machine only. Default None: every request gets 403, except
            when ``app.testing`` is true, and local ones (``is_local_request``)
            when ``app.debug`` is true.

        It also makes the app's queue the process's default queue
        (``jobq.configure``), so ``jobq.submit(...)`` uses it. That default is
        process-wide: with several apps in one process it is the queue of the
        app initialised last; use ``task.enqueue(...)`` or ``jobq_ext.queue``,
        which follow ``current_app``, there.

        Raises RuntimeError if the app was already initialised, ValueError or
        TypeError for a bad setting, naming the key.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                f"the jobq extension is already initialised on app {app.name!r}; "
                "call init_app once per app (create a new app for a new configuration)"
            )
        if self._monitor_auth is not None:
            app.config.setdefault("JOBQ_MONITOR_AUTH", self._monitor_auth)
        settings = JobQConfig.from_app(app)
        if "://" not in settings.database:
            _make_private_folders(os.path.dirname(settings.database) or ".")
        register_monitor(app)

        queue = jobq.DurableQueue(
            settings.database,
            driver=settings.driver,
            synchronous=settings.synchronous,
            lease_seconds=settings.lease_seconds,
            poll_interval=settings.poll_interval,
            retention=settings.retention,
        )
        state = JobQState(
            app, queue, concurrency=settings.concurrency, queues=settings.queues,
            start_automatically=settings.start_workers, schedules=settings.schedules,
        )
        queue.around_job = state._around_job
        for task in self._registry:
            queue.registry.add(task)
        try:
            _install_handlers(queue, settings.handlers)
        except BaseException:
            queue.close()
            raise
        state._connect_signals()
        app.extensions[EXTENSION_KEY] = state
        from .cli import jobq_cli  # imported here: flask_jobq.cli imports this module

        app.cli.add_command(jobq_cli)
        self._states.add(state)
        _states.add(state)
        jobq.configure(queue)

        if state.start_automatically:
            app.before_request(state._before_request)
            _install_sigterm_handler()
            if is_running_from_reloader():
                state.start_workers()

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
    ) -> Callable[[Callable[P, R]], FlaskTask[P, R]]:
        """Declare a task for every app of this extension: ``@jobq_ext.task(...)``.

        Works before or after ``init_app``: the task is added, as declared, to the
        queue of each app initialised, now or later. The options are those of
        :meth:`jobq.DurableQueue.task`: ``name`` (default ``module.qualname``),
        ``max_attempts`` (default 3, >= 1), ``backoff`` (seconds, a callable
        ``backoff(attempt) -> seconds``, or None for exponential backoff with
        jitter), ``priority`` (default 0, higher first), ``queue`` (default
        ``"default"``), ``timeout`` (seconds an attempt may run, > 0, default
        None), ``concurrency_limit``, ``rate_limit`` and ``rate_limit_key``
        (limits across every process, default none), ``check`` (an argument
        check run at every enqueue, default None).

        Raises :class:`jobq.ConfigurationError` if another function already has
        the name, ValueError or TypeError for a bad option.
        """
        declare = self._registry.task(
            name, max_attempts=max_attempts, backoff=backoff, priority=priority, queue=queue,
            timeout=timeout, concurrency_limit=concurrency_limit, rate_limit=rate_limit,
            rate_limit_key=rate_limit_key, check=check,
        )

        def register(function: Callable[P, R]) -> FlaskTask[P, R]:
            task = declare(function)
            for state in list(self._states):
                state.queue.registry.add(task)
            return cast(FlaskTask[P, R], task)

        return register

    def monitor_auth(self, check: Callable[[], bool]) -> Callable[[], bool]:
        """Authorise the monitoring endpoints of this extension's apps with ``check``.

        ``@jobq_ext.monitor_auth`` on a function taking no arguments that returns
        True to allow the request (it can read ``flask.request``). It becomes
        ``JOBQ_MONITOR_AUTH`` of each app initialised later that sets none, and of
        each app initialised already whose setting is None or an earlier
        ``monitor_auth``. Returns ``check`` unchanged.
        """
        previous, self._monitor_auth = self._monitor_auth, check
        for state in list(self._states):
            if state.app.config.get("JOBQ_MONITOR_AUTH") in (None, previous):
                state.app.config["JOBQ_MONITOR_AUTH"] = check
        return check

    @property
    def queue(self) -> jobq.DurableQueue:
        """The :class:`jobq.DurableQueue` of ``current_app``. Raises RuntimeError
        outside an application context or for an app not initialised."""
        return state_for().queue

    def state(self, app: Flask | None = None) -> JobQState:
        """The :class:`JobQState` of ``app`` (default ``current_app``); see :func:`state_for`."""
        return state_for(app)

    def start_workers(self, app: Flask | None = None) -> jobq.WorkerPool:
        """Start the worker pool of ``app`` (default ``current_app``) in this process
        now, whatever ``JOBQ_START_WORKERS`` says; return it (the running one if any)."""
        return state_for(app).start_workers()

    def stop_workers(self, app: Flask | None = None, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop the worker pool of ``app`` (default ``current_app``) in this process,
        giving running jobs ``timeout`` seconds (default 30). Returns True if none
        was left running. The next request starts a new pool (if automatic)."""
        return state_for(app).stop_workers(timeout)

    def close(self, app: Flask | None = None, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the workers of ``app`` (default ``current_app``) and close its queue
        (see :meth:`JobQState.close`); for tests and orderly shutdowns."""
        state_for(app).close(timeout)


def _install_handlers(queue: jobq.DurableQueue, handlers: Mapping[str, Any]) -> None:
    """Install the handlers whose settings the app's config holds."""
    for module_name, settings in handlers.items():
        importlib.import_module(f"jobq.handlers.{module_name}").install(queue, settings)


def _make_private_folders(folder: str) -> None:
    """Create ``folder`` and any missing parent, each readable by its owner only
    (job arguments live inside); folders that exist keep their mode."""
    missing: list[str] = []
    while folder and not os.path.isdir(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            os.mkdir(path, 0o700)


def _install_sigterm_handler() -> None:
    global _sigterm_installed
    with _sigterm_lock:
        if _sigterm_installed or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return  # a server handles SIGTERM and exits normally: atexit stops the pools
        signal.signal(signal.SIGTERM, _on_sigterm)
        _sigterm_installed = True


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork() stays held in the child forever;
    # the child's first request must be able to start its pool.
    for state in list(_states):
        state._lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _terminating
    _terminating = True  # request threads keep serving while the pools stop
    for state in list(_states):
        try:
            state.stop_workers(STOP_TIMEOUT)
        except Exception:
            logger.exception("jobq: stopping the workers of app %r failed", state.app.name)
    # Then die of the signal, as the default handler would have, exit status included.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
