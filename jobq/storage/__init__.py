"""Durable job storage: the :class:`Storage` contract and its backends.

The queue depends only on :mod:`jobq.storage.base`; backends are imported by
whoever builds the queue (``SQLiteStorage`` here; ``PostgresStorage`` from
:mod:`jobq.storage.postgres`, which needs the ``jobq[postgres]`` extra).
"""

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
]
