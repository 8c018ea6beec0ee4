"""The extension's settings: one typed, frozen :class:`JobQConfig` built once from
``app.config``, each bad value refused with an error that names its ``JOBQ_*`` key.

Reading follows Flask's extension guide: every key is read with
``app.config.setdefault``, so the defaults are visible in ``app.config``
afterwards. The keys are listed in :meth:`flask_jobq.JobQ.init_app`.

Rule: this module reads configuration only; it imports the ``jobq`` core's basic
values (``defaults``, ``validate``, ``Retention``) and Flask, never the
extension's state, views or command line.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import textwrap
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from flask import Flask
from flask.config import Config

from jobq import defaults
from jobq.retention import Retention
from jobq.validate import check_seconds, is_int

AuthCallback = Callable[[], bool]
"""``JOBQ_MONITOR_AUTH``: called with no arguments in the request; ``True`` allows."""

DEFAULT_URL_PREFIX = "/jobq"
"""Default of ``JOBQ_MONITOR_URL_PREFIX``."""

HANDLERS = (("JOBQ_EMAIL", "email"), ("JOBQ_IMAGE", "image"), ("JOBQ_WEBHOOK", "webhook"))
"""Config keys of the ready-made handlers and their modules in :mod:`jobq.handlers`."""

SCHEDULE_KEYS = frozenset(
    {"task", "cron", "every", "tz", "args", "kwargs", "missed", "max_missed", "grace"}
)
"""The settings a ``JOBQ_SCHEDULES`` entry may have (the options of ``DurableQueue.schedule``)."""


@dataclass(frozen=True)
class Setting:
    """One ``JOBQ_*`` key: its name, the type it takes, its default and what it does.

    ``type`` and ``default`` are written as the documentation shows them (a type
    hint, a Python literal or a few words); ``meaning`` is plain sentences.
    """

    key: str
    type: str
    default: str
    meaning: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "JOBQ_DATABASE",
        "str | os.PathLike | None",
        "None",
        "SQLite file path, sqlite:///path URL, postgresql:// URL (the jobq[postgres] "
        "extra, for workers on several hosts), or redis:// (rediss://) URL (the "
        "jobq[redis] extra, likewise; options in its query: ?prefix=...&durability=refuse). "
        "A relative path is relative to the app's "
        "instance folder; the file's folder is created if missing, readable by its owner "
        "only. None: jobq.db in the instance folder, or, when app.testing is true, a "
        "temporary database removed at exit (the instance folder is never touched).",
    ),
    Setting(
        "JOBQ_CONCURRENCY",
        "int",
        repr(defaults.CONCURRENCY),
        "Worker threads in each process that runs workers, >= 1.",
    ),
    Setting(
        "JOBQ_QUEUES",
        "list[str] | None",
        "None",
        "Names of the queues this app's workers take jobs from. None: the queues of the "
        "registered tasks (['default'] if none).",
    ),
    Setting(
        "JOBQ_START_WORKERS",
        "bool",
        "True",
        "Start workers in each process that serves the app, as soon as it serves (gunicorn, "
        "uWSGI, flask run, app.run()); never in a testing app. False for apps whose jobs run "
        "in a separate process (flask jobq worker).",
    ),
    Setting(
        "JOBQ_INLINE",
        "bool",
        "False",
        "Run each job in the enqueuing thread as soon as it is stored, for tests that want "
        "jobs done by the time the request returns.",
    ),
    Setting(
        "JOBQ_LEASE_SECONDS",
        "float",
        repr(defaults.LEASE_SECONDS),
        "Seconds a claimed job stays reserved without a heartbeat, > 0.",
    ),
    Setting(
        "JOBQ_POLL_INTERVAL",
        "float",
        repr(defaults.POLL_INTERVAL),
        "Seconds between looks for jobs enqueued by other processes while idle, > 0.",
    ),
    Setting(
        "JOBQ_RETENTION",
        "jobq.Retention | None",
        "None",
        "How long finished jobs are kept. None: jobq.Retention's defaults (completed and "
        "cancelled jobs 7 days, failed 30).",
    ),
    Setting(
        "JOBQ_SYNCHRONOUS",
        "str",
        "'NORMAL'",
        "SQLite's durability: 'NORMAL' or 'FULL' (see jobq.DurableQueue).",
    ),
    Setting(
        "JOBQ_DRIVER",
        "str | None",
        "None",
        "The SQLite driver: 'auto' (apsw when it is installed, else sqlite3), 'sqlite3' "
        "or 'apsw'. None: the default of jobq.DurableQueue ('auto').",
    ),
    Setting(
        "JOBQ_SCHEDULES",
        "dict[str, dict]",
        "{}",
        "Recurring schedules by name, each a dict with task (a registered task name), cron "
        "or every, and optionally tz, args, kwargs, missed, max_missed, grace (the options "
        "of DurableQueue.schedule). Stored when the app's queue opens, so flask jobq "
        "schedules lists them without a worker.",
    ),
    Setting(
        "JOBQ_EMAIL",
        "dict",
        "not set",
        "Settings of the email handler (the fields of jobq.handlers.email.EmailSettings); "
        "when set, the handler is installed on the app's queue.",
    ),
    Setting(
        "JOBQ_IMAGE",
        "dict",
        "not set",
        "Settings of the image handler (the fields of jobq.handlers.image.ImageSettings); "
        "when set, the handler is installed on the app's queue.",
    ),
    Setting(
        "JOBQ_WEBHOOK",
        "dict",
        "not set",
        "Settings of the webhook handler (the fields of "
        "jobq.handlers.webhook.WebhookSettings); when set, the handler is installed on the "
        "app's queue.",
    ),
    Setting(
        "JOBQ_MONITOR_URL_PREFIX",
        "str | None",
        "'/jobq'",
        "URL path of the monitoring endpoints, starting with /. None mounts no monitor.",
    ),
    Setting(
        "JOBQ_MONITOR_AUTH",
        "Callable[[], bool] | None",
        "None",
        "Called with no arguments in each monitor request; exactly True allows it (it can "
        "read flask.request; flask_jobq.is_local_request allows this machine only). None: "
        "the callback given to @jobq_ext.monitor_auth if any, else every request gets 403, "
        "except when app.testing is true, and local requests when app.debug is true.",
    ),
    Setting(
        "JOBQ_MONITOR_SHOW_PAYLOADS",
        "bool",
        "True",
        "Show each job's arguments on the dashboard's job page (<prefix>/ui/jobs/<id>). "
        "False hides them, for apps whose payloads hold what only the task should see; "
        "the JSON endpoints never show them.",
    ),
    Setting(
        "JOBQ_HEALTH_AUTH",
        "Callable[[], bool] | None",
        "None",
        "Who may call the health endpoint (<prefix>/health). None: anyone, such as a load "
        "balancer, gets the status alone; requests the monitor's authorisation allows also "
        "get the details. A callable (same convention as JOBQ_MONITOR_AUTH): only requests "
        "it allows get an answer, the others 403; lambda: False closes the endpoint.",
    ),
    Setting(
        "JOBQ_METRICS",
        "bool",
        "False",
        "Count jobs for Prometheus (the jobq[prometheus] extra): each process connects "
        "jobq.metrics' counters to the app's queue, and <prefix>/metrics serves them with "
        "gauges read from the database. False: nothing is counted and <prefix>/metrics "
        "answers 404.",
    ),
    Setting(
        "JOBQ_METRICS_AUTH",
        "str | Callable[[], bool] | None",
        "None",
        "Who may scrape <prefix>/metrics. A string: the bearer token scrapers send as "
        "'Authorization: Bearer <token>'. A callable: same convention as JOBQ_MONITOR_AUTH. "
        "None: 403, except when app.testing is true, and local requests when app.debug is "
        "true.",
    ),
)
"""Every ``JOBQ_*`` key the extension reads, in the order of the documentation: the one
place :meth:`JobQ.init_app <flask_jobq.JobQ.init_app>`'s docstring and the
configuration reference are checked against."""

_NOT_SET = "not set"

DEFAULTS: Mapping[str, Any] = {
    setting.key: ast.literal_eval(setting.default)
    for setting in SETTINGS
    if setting.default != _NOT_SET
}
"""The default of each key that has one, as ``init_app`` writes it into ``app.config``
(with ``setdefault``, a fresh copy for each app)."""


def settings_docstring() -> str:
    """The settings as :meth:`JobQ.init_app <flask_jobq.JobQ.init_app>`'s docstring lists
    them (reST definition list, indented for that docstring)."""
    lines: list[str] = []
    for setting in SETTINGS:
        lines.append(f"        ``{setting.key}``")
        body = f"{setting.meaning} Type ``{setting.type}``, default ``{setting.default}``."
        lines.extend(
            textwrap.wrap(
                body,
                width=88,
                initial_indent=" " * 12,
                subsequent_indent=" " * 12,
                break_on_hyphens=False,
                break_long_words=False,
            )
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class MonitorConfig:
    """``JOBQ_MONITOR_URL_PREFIX`` (without a trailing ``/``; None: no monitor) and
    ``JOBQ_MONITOR_AUTH`` (None: the default rule, see :mod:`flask_jobq.views`)."""

    url_prefix: str | None
    auth: AuthCallback | None

    @classmethod
    def from_config(cls, config: Config) -> MonitorConfig:
        """Read both keys with ``setdefault``. Raises TypeError or ValueError naming
        the key."""
        prefix = config.setdefault("JOBQ_MONITOR_URL_PREFIX", DEFAULT_URL_PREFIX)
        auth = config.setdefault("JOBQ_MONITOR_AUTH", None)
        if auth is not None and not callable(auth):
            raise TypeError(f"JOBQ_MONITOR_AUTH must be a callable or None, got {auth!r}")
        if prefix is None:
            return cls(None, auth)
        if not isinstance(prefix, str) or not prefix.startswith("/") or prefix.rstrip("/") == "":
            raise ValueError(
                f"JOBQ_MONITOR_URL_PREFIX must be a path such as '/jobq' (not '/'), or None, "
                f"got {prefix!r}"
            )
        return cls(prefix.rstrip("/"), auth)


@dataclass(frozen=True)
class JobQConfig:
    """The extension's settings for one app, checked; :data:`SETTINGS` says what each
    key means.

    :ivar database: ``JOBQ_DATABASE`` as the queue opens it: a URL, or a path
        made absolute against the app's instance folder; None when not set (the
        extension then picks the instance folder's ``jobq.db``, or a temporary
        database for a testing app).
    :ivar concurrency: ``JOBQ_CONCURRENCY``, >= 1.
    :ivar queues: ``JOBQ_QUEUES`` (None: the queues of the registered tasks).
    :ivar start_workers: ``JOBQ_START_WORKERS``.
    :ivar inline: ``JOBQ_INLINE``.
    :ivar lease_seconds: ``JOBQ_LEASE_SECONDS``, > 0.
    :ivar poll_interval: ``JOBQ_POLL_INTERVAL``, > 0.
    :ivar retention: ``JOBQ_RETENTION``.
    :ivar synchronous: ``JOBQ_SYNCHRONOUS``.
    :ivar driver: ``JOBQ_DRIVER`` (None: the queue's default).
    :ivar schedules: ``JOBQ_SCHEDULES``.
    :ivar handlers: the handler settings the app sets, by module name
        (``"email"`` for ``JOBQ_EMAIL``, ...), checked by the handler itself.
    :ivar monitor: ``JOBQ_MONITOR_URL_PREFIX`` and ``JOBQ_MONITOR_AUTH``.
    :ivar health_auth: ``JOBQ_HEALTH_AUTH``.
    :ivar metrics: ``JOBQ_METRICS``.
    """

    database: str | None
    concurrency: int
    queues: Collection[str] | None
    start_workers: bool
    inline: bool
    lease_seconds: float
    poll_interval: float
    retention: Retention | None
    synchronous: Literal["NORMAL", "FULL"]
    driver: Literal["auto", "sqlite3", "apsw"] | None
    schedules: Mapping[str, Mapping[str, Any]]
    handlers: Mapping[str, Any]
    monitor: MonitorConfig
    health_auth: AuthCallback | None
    metrics: bool = False

    @classmethod
    def from_app(cls, app: Flask) -> JobQConfig:
        """Read the ``JOBQ_*`` keys of ``app.config``, writing the defaults of those
        not set (:data:`DEFAULTS`). Raises TypeError or ValueError whose message
        starts with the key."""
        config = app.config
        for setting in SETTINGS:
            if setting.default != _NOT_SET:  # evaluated each time: no dict shared by two apps
                config.setdefault(setting.key, ast.literal_eval(setting.default))
        concurrency = config["JOBQ_CONCURRENCY"]
        queues = config["JOBQ_QUEUES"]
        retention = config["JOBQ_RETENTION"]
        synchronous = config["JOBQ_SYNCHRONOUS"]
        driver = config["JOBQ_DRIVER"]
        health_auth = config["JOBQ_HEALTH_AUTH"]

        if not is_int(concurrency) or concurrency < 1:
            raise ValueError(f"JOBQ_CONCURRENCY must be an integer >= 1, got {concurrency!r}")
        if queues is not None and (isinstance(queues, str) or not isinstance(queues, Collection)):
            raise TypeError(f"JOBQ_QUEUES must be a list of queue names or None, got {queues!r}")
        if retention is not None and not isinstance(retention, Retention):
            raise TypeError(f"JOBQ_RETENTION must be a jobq.Retention or None, got {retention!r}")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"JOBQ_SYNCHRONOUS must be 'NORMAL' or 'FULL', got {synchronous!r}")
        if driver not in (None, "auto", "sqlite3", "apsw"):
            raise ValueError(
                f"JOBQ_DRIVER must be 'auto', 'sqlite3', 'apsw' or None, got {driver!r}"
            )
        _check_health_and_metrics(config)
        _check_schedules(config["JOBQ_SCHEDULES"])
        location = _database_location(app, config["JOBQ_DATABASE"])
        monitor = MonitorConfig.from_config(config)
        check_seconds("JOBQ_LEASE_SECONDS", config["JOBQ_LEASE_SECONDS"])
        check_seconds("JOBQ_POLL_INTERVAL", config["JOBQ_POLL_INTERVAL"])
        handlers = {module: config[key] for key, module in HANDLERS if config.get(key) is not None}
        _check_handlers(handlers)
        return cls(
            database=location,
            concurrency=concurrency,
            queues=queues,
            start_workers=bool(config["JOBQ_START_WORKERS"]),
            inline=bool(config["JOBQ_INLINE"]),
            lease_seconds=config["JOBQ_LEASE_SECONDS"],
            poll_interval=config["JOBQ_POLL_INTERVAL"],
            retention=retention,
            synchronous=cast(Literal["NORMAL", "FULL"], synchronous),
            driver=cast(Literal["auto", "sqlite3", "apsw"] | None, driver),
            schedules=config["JOBQ_SCHEDULES"],
            handlers=handlers,
            monitor=monitor,
            health_auth=health_auth,
            metrics=bool(config["JOBQ_METRICS"]),
        )


def _check_health_and_metrics(config: Config) -> None:
    """Check ``JOBQ_HEALTH_AUTH``, ``JOBQ_METRICS`` (prometheus_client installed) and
    ``JOBQ_METRICS_AUTH``."""
    health_auth = config["JOBQ_HEALTH_AUTH"]
    if health_auth is not None and not callable(health_auth):
        raise TypeError(f"JOBQ_HEALTH_AUTH must be a callable or None, got {health_auth!r}")
    if config["JOBQ_METRICS"] and importlib.util.find_spec("prometheus_client") is None:
        raise ImportError("JOBQ_METRICS needs prometheus_client: pip install 'jobq[prometheus]'")
    metrics_auth = config["JOBQ_METRICS_AUTH"]
    if metrics_auth is not None and not (isinstance(metrics_auth, str) or callable(metrics_auth)):
        raise TypeError(
            f"JOBQ_METRICS_AUTH must be a bearer token (a string), a callable or None, "
            f"got {metrics_auth!r}"
        )


def _check_handlers(handlers: Mapping[str, Any]) -> None:
    """Build each handler's settings object once, so a bad ``JOBQ_EMAIL`` (...) is
    reported by ``init_app`` although the handler is installed when the queue opens."""
    from jobq.handlers._install import settings_of

    for module_name, settings in handlers.items():
        module = importlib.import_module(f"jobq.handlers.{module_name}.settings")
        settings_class = getattr(module, f"{module_name.capitalize()}Settings")
        settings_of(settings_class, settings, f"JOBQ_{module_name.upper()}")


def _check_schedules(schedules: object) -> None:
    if not isinstance(schedules, Mapping):
        raise TypeError(f"JOBQ_SCHEDULES must map schedule names to settings, got {schedules!r}")
    for name, options in schedules.items():
        if not isinstance(options, Mapping) or "task" not in options:
            raise TypeError(
                f"JOBQ_SCHEDULES[{name!r}] must be a mapping with a 'task' and a 'cron' or "
                f"'every', got {options!r}"
            )
        unknown = sorted(set(options) - SCHEDULE_KEYS)
        if unknown:
            raise ValueError(
                f"JOBQ_SCHEDULES[{name!r}] has unknown setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(SCHEDULE_KEYS))}"
            )


def _database_location(app: Flask, database: object) -> str | None:
    if database is None:
        return None
    if not isinstance(database, (str, os.PathLike)):
        raise TypeError(
            f"JOBQ_DATABASE must be a path, a sqlite:/// URL, a postgresql:// URL or a "
            f"redis:// URL, "
            f"got {database!r}"
        )
    text = os.fspath(database)
    if not isinstance(text, str):
        raise TypeError(f"JOBQ_DATABASE must be a text path, got {database!r}")
    if "://" in text:
        return text
    return os.path.join(app.instance_path, text)  # an absolute `text` is kept as it is
