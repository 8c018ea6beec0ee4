"""Durable job storage: the :class:`Storage` contract, its backends, and
:func:`open_storage`, which picks the backend for a location.

- :mod:`jobq.storage.base`: the contract (:class:`Storage`) and the values
  passed in and out;
- :mod:`jobq.storage.checked`: the argument checks, run once above every
  backend; :mod:`jobq.storage.parts`: what a backend provides below them;
- :mod:`jobq.storage.sqlite` (``SQLiteStorage``, re-exported here) and
  :mod:`jobq.storage.postgres` (``PostgresStorage``, which needs the
  ``jobq[postgres]`` extra and is imported only when a ``postgresql://`` URL
  is opened); :mod:`jobq.storage.redis` (``RedisStorage``, likewise with the
  ``jobq[redis]`` extra and a ``redis://`` or ``rediss://`` URL);
- :mod:`jobq.storage.transfer`: moving waiting jobs between two storages.

The queue calls :func:`open_storage` and otherwise depends only on the contract.

Rule: storage imports basic values (``errors``, ``validate``, ``job``) and
nothing above them: no task, schedule, worker, queue or Flask module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from ..errors import ConfigurationError
from .base import Completion as Completion
from .base import Enqueued as Enqueued
from .base import NewJob as NewJob
from .base import Notifier as Notifier
from .base import QueueStats as QueueStats
from .base import RenewResult as RenewResult
from .base import RescueResult as RescueResult
from .base import ScheduleState as ScheduleState
from .base import SchemaVersionError as SchemaVersionError
from .base import Stats as Stats
from .base import Storage as Storage
from .base import StorageError as StorageError
from .base import TaskLimit as TaskLimit
from .base import UniqueKeyConflict as UniqueKeyConflict
from .base import WrongProcessError as WrongProcessError
from .sqlite import SQLiteStorage as SQLiteStorage
from .sqlite.driver import DriverName

POSTGRES_SCHEMES = ("postgres://", "postgresql://")
SQLITE_SCHEME = "sqlite:///"
REDIS_SCHEMES = ("redis://", "rediss://")


def open_storage(
    location: str | os.PathLike[str] | Storage,
    *,
    driver: DriverName = "auto",
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
) -> Storage:
    """The storage at ``location``, opened (and its schema migrated).

    :param location: a SQLite file path, a ``sqlite:///path`` URL, a
        ``postgresql://`` (or ``postgres://``) URL, a ``redis://`` (or ``rediss://``,
        TLS) URL, or a ready :class:`Storage`, returned as it is. A Redis URL's
        query may hold jobq's options ``prefix`` (what every key starts with,
        default ``jobq:``) and ``durability`` (``warn``, the default, ``refuse`` or
        ``ignore``: what to do when the server could lose accepted jobs in a crash),
        e.g. ``redis://cache:6379/0?prefix=shop:&durability=refuse``; see
        :class:`~jobq.storage.redis.RedisStorage`.
    :param driver: for SQLite, ``"auto"`` (default: apsw when installed, else
        sqlite3), ``"sqlite3"`` or ``"apsw"``.
    :param synchronous: for SQLite, ``"NORMAL"`` (default) or ``"FULL"``.

    Raises :class:`~jobq.errors.ConfigurationError` for another kind of URL,
    ImportError for a PostgreSQL URL without the ``jobq[postgres]`` extra or a
    Redis URL without the ``jobq[redis]`` extra, and
    what the backend's constructor raises (:class:`StorageError`,
    :class:`SchemaVersionError`, ValueError).
    """
    if isinstance(location, Storage):
        return location
    text = os.fspath(location)
    if text.startswith(POSTGRES_SCHEMES):
        # Imported here, not above: psycopg is an optional extra, needed only now.
        from .postgres import PostgresStorage

        return PostgresStorage(text)
    if text.startswith(REDIS_SCHEMES):
        # Likewise: redis-py is the optional ``redis`` extra.
        from .redis import RedisStorage

        return RedisStorage(text)
    if text.startswith(SQLITE_SCHEME):
        text = text[len(SQLITE_SCHEME) :]
    elif "://" in text:
        raise ConfigurationError(
            f"unsupported database URL {text!r}; give a SQLite file path, a sqlite:/// URL, "
            "a postgresql:// URL or a redis:// (rediss://) URL"
        )
    return SQLiteStorage(Path(text), driver=driver, synchronous=synchronous)


__all__ = [
    "Completion",
    "Enqueued",
    "NewJob",
    "Notifier",
    "QueueStats",
    "RenewResult",
    "RescueResult",
    "SQLiteStorage",
    "ScheduleState",
    "SchemaVersionError",
    "Stats",
    "Storage",
    "StorageError",
    "TaskLimit",
    "UniqueKeyConflict",
    "WrongProcessError",
    "open_storage",
]
