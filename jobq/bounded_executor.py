"""Deprecated import path of :class:`jobq.BoundedExecutor` and :class:`jobq.TaskOptions`,
kept so that old imports work; they now live in :mod:`jobq.executors.bounded`.

Rule: re-exports only; import these names from :mod:`jobq`.
"""

import warnings

from .executors.bounded import BoundedExecutor as BoundedExecutor
from .executors.bounded import TaskOptions as TaskOptions

__all__ = ["BoundedExecutor", "TaskOptions"]

warnings.warn(
    "jobq.bounded_executor is deprecated; import BoundedExecutor and TaskOptions from jobq",
    DeprecationWarning,
    stacklevel=2,
)
