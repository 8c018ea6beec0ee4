"""Exceptions raised by jobq. Every one derives from :class:`JobqError`."""

from __future__ import annotations


class JobqError(Exception):
    """Base class of every exception jobq raises on purpose."""


class ConfigurationError(JobqError, ValueError):
    """Settings that contradict each other or an earlier configuration."""


class QueueFull(JobqError):
    """A bounded executor's waiting list is full and it was asked not to block.

    ``max_queued`` holds the bound that was reached.
    """

    def __init__(self, max_queued: int) -> None:
        super().__init__(
            f"the executor already holds {max_queued} waiting tasks (max_queued={max_queued}); "
            "wait with wait_size_less_than(), or use when_full='block'"
        )
        self.max_queued = max_queued


class TaskTimeout(JobqError, TimeoutError):
    """A task ran longer than its timeout; its future fails with this error.

    It is a :class:`TimeoutError`, so ``except TimeoutError`` catches it.
    ``timeout`` is the limit that was exceeded, in seconds.
    """

    def __init__(self, timeout: float, task: str) -> None:
        super().__init__(f"task {task} did not finish within its timeout of {timeout:g} s")
        self.timeout = timeout


class PayloadError(JobqError, TypeError):
    """A job's arguments or result cannot be stored as JSON.

    ``path`` says where the offending value sits (``"args[1]['when']"``).
    """

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path
