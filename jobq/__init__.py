"""jobq: background jobs for Flask and other WSGI apps, with no broker to run.

This package is the framework-free core; it never imports Flask.
"""

from . import signals as signals
from .batches import Batch as Batch
from .batches import BatchState as BatchState
from .batches import BatchSummary as BatchSummary
from .clock import SYSTEM_CLOCK as SYSTEM_CLOCK
from .clock import WALL_CLOCK as WALL_CLOCK
from .clock import Clock as Clock
from .clock import EpochClock as EpochClock
from .clock import MonotonicClock as MonotonicClock
from .clock import SystemClock as SystemClock
from .clock import WallClock as WallClock
from .context import JobContext as JobContext
from .context import current_job as current_job
from .default_queue import configure as configure
from .default_queue import default_queue as default_queue
from .default_queue import submit as submit
from .errors import BatchNotFound as BatchNotFound
from .errors import BatchSealed as BatchSealed
from .errors import ChildProcessDied as ChildProcessDied
from .errors import ChildTaskError as ChildTaskError
from .errors import ConfigurationError as ConfigurationError
from .errors import Fail as Fail
from .errors import JobNotFound as JobNotFound
from .errors import JobqError as JobqError
from .errors import NotConfigured as NotConfigured
from .errors import PayloadError as PayloadError
from .errors import QueueFull as QueueFull
from .errors import Refused as Refused
from .errors import Retry as Retry
from .errors import ScheduleNotFound as ScheduleNotFound
from .errors import SchemaVersionError as SchemaVersionError
from .errors import StorageError as StorageError
from .errors import TaskTimeout as TaskTimeout
from .errors import TooManyPausedQueues as TooManyPausedQueues
from .errors import TransientError as TransientError
from .errors import UniqueKeyConflict as UniqueKeyConflict
from .errors import UnknownTask as UnknownTask
from .errors import WorkerStopped as WorkerStopped
from .errors import WrongProcessError as WrongProcessError
from .executors import BoundedExecutor as BoundedExecutor
from .executors import TaskOptions as TaskOptions
from .executors import executor as executor
from .job import Job as Job
from .job import JobError as JobError
from .job import JobStatus as JobStatus
from .queue import DurableQueue as DurableQueue
from .ratelimit import RateLimiter as RateLimiter
from .ratelimit import SlidingWindowLimiter as SlidingWindowLimiter
from .ratelimit import TokenBucket as TokenBucket
from .retention import Retention as Retention
from .retry_rules import RetryRule as RetryRule
from .storage.bulk import BulkResult as BulkResult
from .storage.bulk import JobFilter as JobFilter
from .storage.bulk import PayloadMatch as PayloadMatch
from .storage.history import AttemptRecord as AttemptRecord
from .storage.history import ThroughputPoint as ThroughputPoint
from .storage.history import TimelineEvent as TimelineEvent
from .storage.job_logs import JobLogLine as JobLogLine
from .storage.workers import WorkerInfo as WorkerInfo
from .storage.workers import WorkerThread as WorkerThread
from .tasks import BoundTask as BoundTask
from .tasks import JobOptions as JobOptions
from .tasks import Task as Task
from .worker import WorkerPool as WorkerPool

__all__ = [
    "AttemptRecord",
    "Batch",
    "BatchNotFound",
    "BatchSealed",
    "BatchState",
    "BatchSummary",
    "BoundTask",
    "BoundedExecutor",
    "BulkResult",
    "ChildProcessDied",
    "ChildTaskError",
    "Clock",
    "ConfigurationError",
    "DurableQueue",
    "EpochClock",
    "Fail",
    "Job",
    "JobContext",
    "JobError",
    "JobFilter",
    "JobLogLine",
    "JobNotFound",
    "JobOptions",
    "JobStatus",
    "JobqError",
    "MonotonicClock",
    "NotConfigured",
    "PayloadMatch",
    "PayloadError",
    "QueueFull",
    "RateLimiter",
    "Refused",
    "Retention",
    "Retry",
    "RetryRule",
    "SYSTEM_CLOCK",
    "ScheduleNotFound",
    "SchemaVersionError",
    "SlidingWindowLimiter",
    "StorageError",
    "SystemClock",
    "Task",
    "TaskOptions",
    "TaskTimeout",
    "ThroughputPoint",
    "TimelineEvent",
    "TokenBucket",
    "TooManyPausedQueues",
    "TransientError",
    "UniqueKeyConflict",
    "UnknownTask",
    "WALL_CLOCK",
    "WallClock",
    "WorkerInfo",
    "WorkerPool",
    "WorkerStopped",
    "WorkerThread",
    "WrongProcessError",
    "configure",
    "current_job",
    "default_queue",
    "executor",
    "signals",
    "submit",
]

__version__ = "0.1.0.dev0"
