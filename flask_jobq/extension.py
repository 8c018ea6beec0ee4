"""The Flask extension: one :class:`jobq.DurableQueue` and worker pool per app.

``JobQ`` holds no app (Flask's extension guide): each app's queue, pool and
settings live in a :class:`~flask_jobq.state.JobQState` at
``app.extensions["jobq"]``, so one extension object serves any number of apps,
each with its own database file. Its tasks are declared in a
:class:`jobq.tasks.TaskRegistry` of its own, before any app exists, and added as
declared to each app's queue. When workers start and stop is described in
:mod:`flask_jobq.lifecycle`; the settings in :mod:`flask_jobq.config`.

Rule: the top of the package; it imports the ``jobq`` core and the other
modules of :mod:`flask_jobq`, none of which imports it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import ParamSpec, TypeVar, cast

from flask import Flask

import jobq
from jobq import backoff as backoffs
from jobq.limit_keys import LimitKey
from jobq.retry_rules import DiscardOn, RetryOn
from jobq.task_registry import TaskRegistry
from jobq.tasks import DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE, ArgumentCheck
from jobq.transactional import Transaction

from .cli import jobq_cli
from .config import HANDLERS as HANDLERS
from .config import JobQConfig
from .lifecycle import arrange_workers
from .state import EXTENSION_KEY as EXTENSION_KEY
from .state import STOP_TIMEOUT as STOP_TIMEOUT
from .state import JobQState as JobQState
from .state import state_for as state_for
from .views import register_monitor

P = ParamSpec("P")
R = TypeVar("R")


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
        """Give ``app`` its queue (opened on first use), its monitor and its workers.

        Configuration, read with ``app.config.setdefault`` (so the defaults are
        visible in ``app.config`` afterwards), checked here (a bad value raises at
        once, naming its key) and read again when the app's queue opens on first
        use, so that settings changed after ``create_app()`` (``TESTING`` in a
        test) still count. The same table is
        :data:`flask_jobq.config.SETTINGS`:

        ``JOBQ_DATABASE``
            SQLite file path, sqlite:///path URL, postgresql:// URL (the jobq[postgres]
            extra, for workers on several hosts), or redis:// (rediss://) URL (the
            jobq[redis] extra, likewise; options in its query:
            ?prefix=...&durability=refuse). A relative path is relative to the app's
            instance folder; the file's folder is created if missing, readable by its
            owner only. None: jobq.db in the instance folder, or, when app.testing is
            true, a temporary database removed at exit (the instance folder is never
            touched). Type ``str | os.PathLike | None``, default ``None``.
        ``JOBQ_CONCURRENCY``
            Worker threads in each process that runs workers, >= 1. Type ``int``,
            default ``4``.
        ``JOBQ_QUEUES``
            Names of the queues this app's workers take jobs from. None: the queues of
            the registered tasks (['default'] if none). Type ``list[str] | None``,
            default ``None``.
        ``JOBQ_START_WORKERS``
            Start workers in each process that serves the app, as soon as it serves
            (gunicorn, uWSGI, flask run, app.run()); never in a testing app. False for
            apps whose jobs run in a separate process (flask jobq worker). Type
            ``bool``, default ``True``.
        ``JOBQ_INLINE``
            Run each job in the enqueuing thread as soon as it is stored, for tests that
            want jobs done by the time the request returns. Type ``bool``, default
            ``False``.
        ``JOBQ_LEASE_SECONDS``
            Seconds a claimed job stays reserved without a heartbeat, > 0. Type
            ``float``, default ``30.0``.
        ``JOBQ_POLL_INTERVAL``
            Seconds between looks for jobs enqueued by other processes while idle, > 0.
            Type ``float``, default ``0.01``.
        ``JOBQ_RETENTION``
            How long finished jobs are kept. None: jobq.Retention's defaults (completed
            and cancelled jobs 7 days, failed 30). Type ``jobq.Retention | None``,
            default ``None``.
        ``JOBQ_SYNCHRONOUS``
            SQLite's durability: 'NORMAL' or 'FULL' (see jobq.DurableQueue). Type
            ``str``, default ``'NORMAL'``.
        ``JOBQ_DRIVER``
            The SQLite driver: 'auto' (apsw when it is installed, else sqlite3),
            'sqlite3' or 'apsw'. None: the default of jobq.DurableQueue ('auto'). Type
            ``str | None``, default ``None``.
        ``JOBQ_SCHEDULES``
            Recurring schedules by name, each a dict with task (a registered task name),
            cron or every, and optionally tz, args, kwargs, missed, max_missed, grace
            (the options of DurableQueue.schedule). Stored when the app's queue opens,
            so flask jobq schedules lists them without a worker. Type ``dict[str,
            dict]``, default ``{}``.
        ``JOBQ_EMAIL``
            Settings of the email handler (the fields of
            jobq.handlers.email.EmailSettings); when set, the handler is installed on
            the app's queue. Type ``dict``, default ``not set``.
        ``JOBQ_IMAGE``
            Settings of the image handler (the fields of
            jobq.handlers.image.ImageSettings); when set, the handler is installed on
            the app's queue. Type ``dict``, default ``not set``.
        ``JOBQ_WEBHOOK``
            Settings of the webhook handler (the fields of
            jobq.handlers.webhook.WebhookSettings); when set, the handler is installed
            on the app's queue. Type ``dict``, default ``not set``.
        ``JOBQ_MONITOR_URL_PREFIX``
            URL path of the monitoring endpoints, starting with /. None mounts no
            monitor. Type ``str | None``, default ``'/jobq'``.
        ``JOBQ_MONITOR_AUTH``
            Called with no arguments in each monitor request; exactly True allows it (it
            can read flask.request; flask_jobq.is_local_request allows this machine
            only). None: the callback given to @jobq_ext.monitor_auth if any, else every
            request gets 403, except when app.testing is true, and local requests when
            app.debug is true. Type ``Callable[[], bool] | None``, default ``None``.
        ``JOBQ_MONITOR_SHOW_PAYLOADS``
            Show each job's arguments on the dashboard's job page
            (<prefix>/ui/jobs/<id>). False hides them, for apps whose payloads hold what
            only the task should see; the JSON endpoints never show them. Type ``bool``,
            default ``True``.
        ``JOBQ_HEALTH_AUTH``
            Who may call the health endpoint (<prefix>/health). None: anyone, such as a
            load balancer, gets the status alone; requests the monitor's authorisation
            allows also get the details. A callable (same convention as
            JOBQ_MONITOR_AUTH): only requests it allows get an answer, the others 403;
            lambda: False closes the endpoint. Type ``Callable[[], bool] | None``,
            default ``None``.
        ``JOBQ_METRICS``
            Count jobs for Prometheus (the jobq[prometheus] extra): each process
            connects jobq.metrics' counters to the app's queue, and <prefix>/metrics
            serves them with gauges read from the database. False: nothing is counted
            and <prefix>/metrics answers 404. Type ``bool``, default ``False``.
        ``JOBQ_METRICS_AUTH``
            Who may scrape <prefix>/metrics. A string: the bearer token scrapers send as
            'Authorization: Bearer <token>'. A callable: same convention as
            JOBQ_MONITOR_AUTH. None: 403, except when app.testing is true, and local
            requests when app.debug is true. Type ``str | Callable[[], bool] | None``,
            default ``None``.

        Workers start by themselves in each process that serves the app, before
        any request; see :mod:`flask_jobq.lifecycle` for exactly where.

        The app's queue becomes the process's default queue (``jobq.configure``),
        so ``jobq.submit(...)`` uses it anywhere (a view, a ``flask`` command, a
        thread), opening it if needed. That default is process-wide: with several
        apps in one process it is the queue of the app initialised last; use
        ``task.enqueue(...)`` or ``jobq_ext.queue``, which follow ``current_app``,
        there.

        Raises RuntimeError if the app was already initialised, ValueError or
        TypeError for a bad setting, naming the key.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                f"the jobq extension is already initialised on app {app.name!r}; "
                "call init_app once per app (create a new app for a new configuration)"
            )
        settings = JobQConfig.from_app(app)
        register_monitor(app)
        state = JobQState(
            app, settings, tasks=self._registry, default_monitor_auth=self._current_monitor_auth
        )
        app.extensions[EXTENSION_KEY] = state
        app.cli.add_command(jobq_cli)
        self._states.add(state)
        state.become_default()  # jobq.submit opens the queue when it first needs it
        arrange_workers(app, state)

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
        check run at every enqueue, default None), ``retry_on`` and ``discard_on``
        (retry rules by exception, default None; see :mod:`jobq.retry_rules`).
        check run at every enqueue, default None), ``isolation`` (``"thread"``, the
        default, or ``"process"``: each attempt in a child process, killed at its
        timeout, with the app context rebuilt around it there).
        check run at every enqueue, default None), ``expires_in`` (default expiry of
        its jobs: seconds after a job is due, default None).
        check run at every enqueue, default None), ``limit_key`` (a parameter name
        or a callable of the arguments: the limits then hold per key, default None).

        Raises :class:`jobq.ConfigurationError` if another function already has
        the name, ValueError or TypeError for a bad option.
        """
        declare = self._registry.task(
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

        def register(function: Callable[P, R]) -> FlaskTask[P, R]:
            task = declare(function)
            for state in list(self._states):
                state.add_task(task)
            return cast(FlaskTask[P, R], task)

        return register

    def monitor_auth(self, check: Callable[[], bool]) -> Callable[[], bool]:
        """Authorise the monitoring endpoints of this extension's apps with ``check``.

        ``@jobq_ext.monitor_auth`` on a function taking no arguments that returns
        True to allow the request (it can read ``flask.request``). It is kept on
        the extension and used by each of its apps, initialised before or after,
        whose ``JOBQ_MONITOR_AUTH`` is None when a request comes (an app's own
        setting wins); no app's config is changed. A later ``monitor_auth``
        replaces it. Returns ``check`` unchanged.
        """
        self._monitor_auth = check
        return check

    def _current_monitor_auth(self) -> Callable[[], bool] | None:
        return self._monitor_auth

    @property
    def queue(self) -> jobq.DurableQueue:
        """The :class:`jobq.DurableQueue` of ``current_app``. Raises RuntimeError
        outside an application context or for an app not initialised."""
        return state_for().queue

    def in_transaction(self, connection: object) -> AbstractContextManager[Transaction]:
        """:meth:`jobq.DurableQueue.in_transaction` on the queue of ``current_app``:
        the jobs enqueued in the block commit with ``connection``'s transaction::

            with jobq_ext.in_transaction(db.session):
                db.session.add(user)
                send_welcome.enqueue(user.id)
            db.session.commit()

        ``connection``: Flask-SQLAlchemy's ``db.session`` (or any SQLAlchemy
        Session or Connection) on the queue's own database (``JOBQ_DATABASE``; on
        SQLite also ``JOBQ_DRIVER = "sqlite3"``, the library SQLAlchemy uses)."""
        return self.queue.in_transaction(connection)

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
