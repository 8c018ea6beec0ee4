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

import os
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
    """The extension's settings for one app, checked; see :meth:`JobQ.init_app
    <flask_jobq.JobQ.init_app>` for what each key means.

    :ivar database: ``JOBQ_DATABASE`` as the queue opens it: a URL, or a path
        made absolute against the app's instance folder.
    :ivar concurrency: ``JOBQ_CONCURRENCY``, >= 1.
    :ivar queues: ``JOBQ_QUEUES`` (None: the queues of the registered tasks).
    :ivar start_workers: ``JOBQ_START_WORKERS``.
    :ivar lease_seconds: ``JOBQ_LEASE_SECONDS``, > 0.
    :ivar poll_interval: ``JOBQ_POLL_INTERVAL``, > 0.
    :ivar retention: ``JOBQ_RETENTION``.
    :ivar synchronous: ``JOBQ_SYNCHRONOUS``.
    :ivar driver: ``JOBQ_DRIVER``.
    :ivar schedules: ``JOBQ_SCHEDULES``.
    :ivar handlers: the handler settings the app sets, by module name
        (``"email"`` for ``JOBQ_EMAIL``, ...), checked by the handler itself.
    :ivar monitor: ``JOBQ_MONITOR_URL_PREFIX`` and ``JOBQ_MONITOR_AUTH``.
    """

    database: str
    concurrency: int
    queues: Collection[str] | None
    start_workers: bool
    lease_seconds: float
    poll_interval: float
    retention: Retention | None
    synchronous: Literal["NORMAL", "FULL"]
    driver: Literal["sqlite3", "apsw"]
    schedules: Mapping[str, Mapping[str, Any]]
    handlers: Mapping[str, Any]
    monitor: MonitorConfig

    @classmethod
    def from_app(cls, app: Flask) -> JobQConfig:
        """Read the ``JOBQ_*`` keys of ``app.config``, writing the defaults of those
        not set. Raises TypeError or ValueError whose message starts with the key."""
        config = app.config
        database = config.setdefault("JOBQ_DATABASE", os.path.join(app.instance_path, "jobq.db"))
        concurrency = config.setdefault("JOBQ_CONCURRENCY", defaults.CONCURRENCY)
        queues = config.setdefault("JOBQ_QUEUES", None)
        start = config.setdefault("JOBQ_START_WORKERS", True)
        lease_seconds = config.setdefault("JOBQ_LEASE_SECONDS", defaults.LEASE_SECONDS)
        poll_interval = config.setdefault("JOBQ_POLL_INTERVAL", defaults.POLL_INTERVAL)
        retention = config.setdefault("JOBQ_RETENTION", None)
        synchronous = config.setdefault("JOBQ_SYNCHRONOUS", "NORMAL")
        driver = config.setdefault("JOBQ_DRIVER", "sqlite3")
        schedules = config.setdefault("JOBQ_SCHEDULES", {})

        if not is_int(concurrency) or concurrency < 1:
            raise ValueError(f"JOBQ_CONCURRENCY must be an integer >= 1, got {concurrency!r}")
        if queues is not None and (isinstance(queues, str) or not isinstance(queues, Collection)):
            raise TypeError(f"JOBQ_QUEUES must be a list of queue names or None, got {queues!r}")
        if retention is not None and not isinstance(retention, Retention):
            raise TypeError(f"JOBQ_RETENTION must be a jobq.Retention or None, got {retention!r}")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"JOBQ_SYNCHRONOUS must be 'NORMAL' or 'FULL', got {synchronous!r}")
        if driver not in ("sqlite3", "apsw"):
            raise ValueError(f"JOBQ_DRIVER must be 'sqlite3' or 'apsw', got {driver!r}")
        _check_schedules(schedules)
        location = _database_location(app, database)
        monitor = MonitorConfig.from_config(config)
        check_seconds("JOBQ_LEASE_SECONDS", lease_seconds)
        check_seconds("JOBQ_POLL_INTERVAL", poll_interval)
        return cls(
            database=location,
            concurrency=concurrency,
            queues=queues,
            start_workers=bool(start),
            lease_seconds=lease_seconds,
            poll_interval=poll_interval,
            retention=retention,
            synchronous=cast(Literal["NORMAL", "FULL"], synchronous),
            driver=cast(Literal["sqlite3", "apsw"], driver),
            schedules=schedules,
            handlers={
                module: config[key] for key, module in HANDLERS if config.get(key) is not None
            },
            monitor=monitor,
        )


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


def _database_location(app: Flask, database: object) -> str:
    if not isinstance(database, (str, os.PathLike)):
        raise TypeError(
            f"JOBQ_DATABASE must be a path, a sqlite:/// URL or a postgresql:// URL, "
            f"got {database!r}"
        )
    text = os.fspath(database)
    if not isinstance(text, str):
        raise TypeError(f"JOBQ_DATABASE must be a text path, got {database!r}")
    if "://" in text:
        return text
    return os.path.join(app.instance_path, text)  # an absolute `text` is kept as it is
