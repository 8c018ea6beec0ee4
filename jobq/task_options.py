"""How a task's jobs are enqueued and run, apart from their arguments: the options
of one enqueue (:class:`JobOptions`) and a task's checked settings (:class:`TaskSettings`).

Rule: imports basic values and the storage contract's values only; :mod:`jobq.tasks`
builds on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import backoff as backoffs
from . import defaults
from .backoff import Backoff
from .expiry import check_expiry_options
from .limit_keys import LimitKey, check_option
from .retry_rules import DiscardOn, RetryOn, RetryRules
from .storage.base import TaskLimit
from .storage.dependencies import MAX_DEPENDENCIES
from .storage.dependencies import POLICIES as DEPENDENCY_POLICIES
from .unique import OnDuplicate, check_duplicate_policy
from .validate import check_count, check_priority, check_seconds, parse_rate

DEFAULT_QUEUE = defaults.QUEUE
DEFAULT_MAX_ATTEMPTS = defaults.MAX_ATTEMPTS
ISOLATIONS = ("thread", "process")
"""The values of a task's ``isolation=`` option."""

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
    :param expires_in: seconds (> 0) after the job is due (now, or after ``delay``
        or at ``run_at``) past which it must not start: still pending then
        (waiting to run, or for a retry), it ends ``cancelled`` with the error
        ``Expired`` (see :mod:`jobq.expiry`).
    :param expires_at: the same as epoch seconds (excludes ``expires_in``).
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
    :param depends_on: jobs (:class:`~jobq.Job` objects or ids, at most 1,000) this
        job waits for: it is stored *waiting* and runs once all of them have
        completed (a completed one counts at once). Not with ``unique_key``. See
        the chains and dependencies guide.
    :param on_dependency_failure: when one of ``depends_on`` ends failed or
        cancelled: ``"cancel"`` (default: this job ends cancelled with the error
        ``DependencyFailed``), ``"fail"`` (it ends failed with that error) or
        ``"run"`` (that dependency counts as done).
    """

    priority: int | None = None
    delay: float | None = None
    run_at: float | None = None
    max_attempts: int | None = None
    unique_key: str | None = None
    queue: str | None = None
    expires_in: float | None = None
    expires_at: float | None = None
    on_duplicate: OnDuplicate | None = None
    debounce: float | None = None
    throttle: float | None = None
    depends_on: tuple[int, ...] | None = None
    on_dependency_failure: str | None = None

    def __post_init__(self) -> None:
        if self.depends_on is not None or self.on_dependency_failure is not None:
            object.__setattr__(self, "depends_on", dependency_ids(self.depends_on))
            check_dependency_options(self)
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
        if self.expires_in is not None or self.expires_at is not None:
            check_expiry_options(self.expires_in, self.expires_at, self.run_at)
        if (self.on_duplicate, self.debounce, self.throttle) != (None, None, None):
            check_duplicate_policy(self)

    def expiry_after(self, default: float | None) -> float | None:
        """The ``expires_in`` of this enqueue: its own, else the task's ``default``
        unless this enqueue gives ``expires_at``."""
        if self.expires_in is not None or self.expires_at is not None:
            return self.expires_in
        return default

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


def dependency_ids(jobs: Any) -> tuple[int, ...] | None:
    """The ids of ``depends_on`` (jobs, ids, or anything with an int ``id``), in
    order without repeats; TypeError for anything else."""
    if jobs is None:
        return None
    if isinstance(jobs, (str, bytes)) or not isinstance(jobs, Iterable):
        raise TypeError(f"depends_on must be a list of jobs or job ids, got {jobs!r}")
    ids: dict[int, None] = {}
    for job in jobs:
        job_id = job if isinstance(job, int) else getattr(job, "id", None)
        if type(job_id) is not int or job_id < 1:
            raise TypeError(f"depends_on must hold jobs or positive job ids, got {job!r}")
        ids[job_id] = None
    return tuple(ids)


def check_dependency_options(options: JobOptions) -> None:
    """Reject a bad ``on_dependency_failure``, or dependencies with a unique key."""
    policy = options.on_dependency_failure
    if policy is not None and policy not in DEPENDENCY_POLICIES:
        raise ValueError(f"on_dependency_failure must be 'cancel', 'fail' or 'run', got {policy!r}")
    if options.depends_on and len(options.depends_on) > MAX_DEPENDENCIES:
        raise ValueError(
            f"depends_on may name at most {MAX_DEPENDENCIES} jobs, got {len(options.depends_on)}"
        )
    if options.depends_on and options.unique_key is not None:
        raise ValueError("depends_on cannot be combined with unique_key; give one or the other")


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
    :ivar retry_rules: its ``retry_on`` and ``discard_on`` (see :mod:`jobq.retry_rules`),
        or None.
    :ivar isolation: where an attempt runs: ``"thread"`` (a worker thread, the
        default) or ``"process"`` (a child process of the worker, killed when the
        timeout passes; see :mod:`jobq.worker.isolation`).
    :ivar expires_in: default expiry of its jobs, seconds after a job is due, or None.
    :ivar limit_key: what groups its jobs for per-key limits (see
        :mod:`jobq.limit_keys`), or None: its limits hold for the task as a whole.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff: Backoff = field(default_factory=backoffs.exponential)
    priority: int = 0
    queue: str = DEFAULT_QUEUE
    timeout: float | None = None
    limits: TaskLimit | None = None
    check: ArgumentCheck | None = None
    retry_rules: RetryRules | None = None
    isolation: str = "thread"
    expires_in: float | None = None
    limit_key: LimitKey | None = None

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
        retry_on: RetryOn | None = None,
        discard_on: DiscardOn | None = None,
        isolation: str = "thread",
        expires_in: float | None = None,
        limit_key: LimitKey | None = None,
    ) -> TaskSettings:
        """The settings of these options (those of :meth:`TaskRegistry.task`).

        Raises ValueError or TypeError, naming the option, for a bad one.
        """
        JobOptions(priority=priority, max_attempts=max_attempts, queue=queue)  # validates
        if timeout is not None:
            check_seconds("timeout", timeout)
        if expires_in is not None:
            check_expiry_options(expires_in, None, None)
        if check is not None and not callable(check):
            raise TypeError(f"check must be a callable or None, got {check!r}")
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be 'thread' or 'process', got {isolation!r}")
        if isolation == "process" and not hasattr(os, "fork"):
            raise ValueError("isolation='process' needs os.fork(), which this platform lacks")
        check_option(limit_key, concurrency_limit, rate_limit)
        limits = task_limits(concurrency_limit, rate_limit, rate_limit_key)
        if limits is not None and limit_key is not None:
            limits = limits._replace(per_key=True)
        return cls(
            max_attempts=max_attempts,
            backoff=backoffs.resolve(backoff),
            priority=priority,
            queue=queue,
            timeout=timeout,
            limits=limits,
            check=check,
            retry_rules=RetryRules.checked(retry_on, discard_on, max_attempts=max_attempts),
            isolation=isolation,
            expires_in=expires_in,
            limit_key=limit_key,
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
