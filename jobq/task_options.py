"""How a task's jobs are enqueued and run, apart from their arguments: the options
of one enqueue (:class:`JobOptions`) and a task's checked settings (:class:`TaskSettings`).

Rule: imports basic values and the storage contract's values only; :mod:`jobq.tasks`
builds on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import backoff as backoffs
from . import defaults
from .backoff import Backoff
from .storage.base import TaskLimit
from .unique import OnDuplicate, check_duplicate_policy
from .validate import check_count, check_priority, check_seconds, parse_rate

DEFAULT_QUEUE = defaults.QUEUE
DEFAULT_MAX_ATTEMPTS = defaults.MAX_ATTEMPTS

ArgumentCheck = Callable[[Mapping[str, Any]], None]
"""A task's ``check=``: receives the arguments of a call as bound to the function's
parameters (name to value, defaults filled in) and raises ValueError for arguments
that can never succeed."""


@dataclass(frozen=True)
class JobOptions:
    """How one job is enqueued, apart from its arguments. None means "the task's own".

    :param priority: higher runs first, any integer.
    :param delay: seconds from now before the job may run (>= 0).
    :param run_at: earliest start as epoch seconds (excludes ``delay``).
    :param max_attempts: attempts allowed, >= 1.
    :param unique_key: while a job of this task with this key is pending or
        processing, enqueueing another returns the existing one instead (in
        whatever queue it is). Keys are per task: another task may use the same
        key for jobs of its own.
    :param queue: queue name to enqueue into.
    :param on_duplicate: what happens when a job of this task holds ``unique_key``:
        ``"keep"`` (default) returns it unchanged; ``"replace"`` gives it this
        enqueue's arguments, run time and priority while it is pending, and
        enqueues a new job when it is already running (the running one keeps
        its old arguments). Needs ``unique_key``. See the unique jobs guide.
    :param debounce: seconds (> 0): the job runs this long after the *last*
        enqueue with its ``unique_key``, with the last arguments (each enqueue
        while it is pending replaces its arguments and pushes its run time to
        now + ``debounce``). Implies ``on_duplicate="replace"``; needs
        ``unique_key``; excludes ``delay`` and ``run_at``.
    :param throttle: seconds (> 0): at most one job of this task with this
        ``unique_key`` per ``throttle`` seconds; an enqueue within that time of
        the newest one's creation returns it, even if it has ended. Needs
        ``unique_key``; not with ``on_duplicate="replace"`` nor ``debounce``.
    """

    priority: int | None = None
    delay: float | None = None
    run_at: float | None = None
    max_attempts: int | None = None
    unique_key: str | None = None
    queue: str | None = None
    on_duplicate: OnDuplicate | None = None
    debounce: float | None = None
    throttle: float | None = None

    def __post_init__(self) -> None:
        if self.priority is not None:
            check_priority(self.priority)
        if self.delay is not None and not self.delay >= 0:
            raise ValueError(f"delay must be at least 0 seconds, got {self.delay!r}")
        if self.delay is not None and self.run_at is not None:
            raise ValueError("give either delay= or run_at=, not both")
        if self.max_attempts is not None:
            check_count("max_attempts", self.max_attempts)
        if self.unique_key is not None and not isinstance(self.unique_key, str):
            raise TypeError(f"unique_key must be a string, got {self.unique_key!r}")
        if self.queue is not None and (not isinstance(self.queue, str) or not self.queue):
            raise ValueError(f"queue must be a non-empty string, got {self.queue!r}")
        if (self.on_duplicate, self.debounce, self.throttle) != (None, None, None):
            check_duplicate_policy(self)

    @property
    def policy(self) -> str:
        """``on_duplicate`` as stored: ``"replace"`` for a debounce, else ``"keep"``
        unless given."""
        if self.debounce is not None:
            return "replace"
        return self.on_duplicate or "keep"

    @property
    def start_delay(self) -> float | None:
        """Seconds from now before the job may run: ``debounce`` or ``delay``."""
        return self.delay if self.debounce is None else self.debounce


@dataclass(frozen=True)
class TaskSettings:
    """A task's options, checked once when it is declared: the defaults of its jobs.

    Build one with :meth:`checked`, which takes the options as users write them.

    :ivar max_attempts: attempts before a job fails for good (>= 1).
    :ivar backoff: ``backoff(attempt) -> seconds`` before the next attempt.
    :ivar priority: default job priority.
    :ivar queue: default queue name.
    :ivar timeout: seconds an attempt may run before it fails as timed out, or None.
    :ivar limits: limits on its jobs across every process, or None.
    :ivar check: the argument check run at every enqueue (see :data:`ArgumentCheck`),
        or None.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff: Backoff = field(default_factory=backoffs.exponential)
    priority: int = 0
    queue: str = DEFAULT_QUEUE
    timeout: float | None = None
    limits: TaskLimit | None = None
    check: ArgumentCheck | None = None

    @classmethod
    def checked(
        cls,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff: float | Backoff | None = None,
        priority: int = 0,
        queue: str = DEFAULT_QUEUE,
        timeout: float | None = None,
        concurrency_limit: int | None = None,
        rate_limit: str | tuple[int, float] | None = None,
        rate_limit_key: str | None = None,
        check: ArgumentCheck | None = None,
    ) -> TaskSettings:
        """The settings of these options (those of :meth:`TaskRegistry.task`).

        Raises ValueError or TypeError, naming the option, for a bad one.
        """
        JobOptions(priority=priority, max_attempts=max_attempts, queue=queue)  # validates
        if timeout is not None:
            check_seconds("timeout", timeout)
        if check is not None and not callable(check):
            raise TypeError(f"check must be a callable or None, got {check!r}")
        return cls(
            max_attempts=max_attempts,
            backoff=backoffs.resolve(backoff),
            priority=priority,
            queue=queue,
            timeout=timeout,
            limits=task_limits(concurrency_limit, rate_limit, rate_limit_key),
            check=check,
        )


def task_limits(
    concurrency_limit: int | None,
    rate_limit: str | tuple[int, float] | None,
    rate_limit_key: str | None,
) -> TaskLimit | None:
    """The :class:`~jobq.storage.base.TaskLimit` of a task's options, or None.

    ``rate_limit`` is ``(count, seconds)`` or text such as ``"10/s"``, ``"100/m"``,
    ``"1000/h"``, ``"5/10s"`` (five per ten seconds). Raises ValueError.
    """
    if concurrency_limit is not None:
        check_count("concurrency_limit", concurrency_limit)
    if rate_limit_key is not None and rate_limit is None:
        raise ValueError("rate_limit_key needs a rate_limit")
    if rate_limit is None:
        return None if concurrency_limit is None else TaskLimit(concurrency_limit)
    count, per = parse_rate(rate_limit)
    return TaskLimit(concurrency_limit, count, per, rate_limit_key)
