"""Deprecated import path of :func:`jobq.executor`, kept so that old imports work;
it now lives in :mod:`jobq.executors.registry`.

Rule: re-exports only; import ``executor`` from :mod:`jobq`.
"""

import warnings

from .executors.registry import executor as executor

__all__ = ["executor"]

warnings.warn(
    "jobq.executor_registry is deprecated; import executor from jobq",
    DeprecationWarning,
    stacklevel=2,
)
