"""Registered tasks: functions a worker may run, found by name, never by pickled code.

``@queue.task()`` turns a function into a :class:`Task`. The function keeps its
signature (calling the task calls the function) and gains ``.enqueue(...)``,
typed with the same parameters, so mypy checks what is enqueued.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from . import codec
from .backoff import Backoff
from .job import Job
from .storage.base import TaskLimit
from .validate import check_count, check_priority

if TYPE_CHECKING:
    from .queue import DurableQueue

P = ParamSpec("P")
R = TypeVar("R")


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
    """

    priority: int | None = None
    delay: float | None = None
    run_at: float | None = None
    max_attempts: int | None = None
    unique_key: str | None = None
    queue: str | None = None

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


class Task(Generic[P, R]):
    """A function registered with a :class:`~jobq.DurableQueue`.

    Call it to run the function here and now; ``.enqueue(...)`` to store a job
    that a worker runs later. Its settings are the defaults of its jobs:

    :ivar name: the registered name jobs refer to.
    :ivar max_attempts: attempts before a job fails for good (>= 1).
    :ivar backoff: ``backoff(attempt) -> seconds`` before the next attempt.
    :ivar priority: default job priority.
    :ivar queue: default queue name.
    :ivar timeout: seconds an attempt may run before it fails as timed out
        (the thread itself cannot be stopped), or None.
    :ivar limits: limits on its jobs across every process (concurrency, rate),
        or None.
    """

    def __init__(
        self,
        fn: Callable[P, R],
        owner: DurableQueue | None,
        *,
        name: str,
        max_attempts: int,
        backoff: Backoff,
        priority: int,
        queue: str,
        timeout: float | None,
        limits: TaskLimit | None = None,
    ) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = name
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.priority = priority
        self.queue = queue
        self.timeout = timeout
        self.limits = limits
        self._owner = owner
        self._signature = inspect.signature(fn)
        self._arities: set[int] = set()  # numbers of positional arguments that bind

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    @property
    def owner(self) -> DurableQueue:
        """The queue ``.enqueue`` stores jobs in. A subclass may resolve it at each
        call (flask_jobq uses the current app's). Raises RuntimeError when there is none."""
        if self._owner is None:
            raise RuntimeError(f"task {self.name} is bound to no queue")
        return self._owner

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Store a job that runs this task with these arguments; return it.

        Raises TypeError, writing nothing, when the arguments do not fit the
        function's signature or are not JSON-serialisable.
        """
        return self.owner._enqueue_task(self, args, kwargs, JobOptions())

    def options(
        self,
        *,
        priority: int | None = None,
        delay: float | None = None,
        run_at: float | None = None,
        max_attempts: int | None = None,
        unique_key: str | None = None,
        queue: str | None = None,
    ) -> BoundTask[P, R]:
        """Enqueue with options kept apart from the arguments (see :class:`JobOptions`)::

            send_report.options(delay=3600, unique_key=f"report-{user_id}").enqueue(user_id)
        """
        options = JobOptions(priority, delay, run_at, max_attempts, unique_key, queue)
        return BoundTask(self, options)

    def enqueue_many(
        self, calls: Iterable[Sequence[Any] | Mapping[str, Any]], **options: Any
    ) -> list[int]:
        """Store one job per call in one transaction; return their ids.

        Each call is a tuple (or list) of positional arguments, or a dict of
        keyword arguments; wrap a single dict argument as ``(d,)``. Every call
        is checked before anything is written. ``options`` as in :meth:`options`.
        """
        return self.owner._enqueue_many(self, calls, JobOptions(**options))

    def encode(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        """Check arguments against the signature and return the JSON payload."""
        if kwargs or len(args) not in self._arities:
            try:
                self._signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"cannot enqueue {self.name}: {exc}") from None
            if not kwargs:
                # Positional arguments alone bind or not by their number only.
                self._arities.add(len(args))
        if not kwargs:
            for value in args:
                if type(value) not in codec.PLAIN:
                    break
            else:  # str, int, bool, None: nothing nested
                return codec.encode_plain_args(args, name=f"{self.name} arguments")
        payload: dict[str, Any] = {"args": list(args), "kwargs": dict(kwargs)}
        return codec.encode(payload, name=f"{self.name} arguments")

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.queue!r} max_attempts={self.max_attempts}>"


class BoundTask(Generic[P, R]):
    """A task with enqueue options attached, made by :meth:`Task.options`."""

    def __init__(self, task: Task[P, R], options: JobOptions) -> None:
        self.task = task
        self.job_options = options

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """As :meth:`Task.enqueue`, with these options."""
        return self.task.owner._enqueue_task(self.task, args, kwargs, self.job_options)

    def enqueue_many(self, calls: Iterable[Sequence[Any] | Mapping[str, Any]]) -> list[int]:
        """As :meth:`Task.enqueue_many`, with these options."""
        return self.task.owner._enqueue_many(self.task, calls, self.job_options)

    def options(self, **changes: Any) -> BoundTask[P, R]:
        """These options with some changed."""
        return BoundTask(self.task, replace(self.job_options, **changes))


_NO_KWARGS: Mapping[str, Any] = {}


def split_call(call: Sequence[Any] | Mapping[str, Any]) -> tuple[Sequence[Any], Mapping[str, Any]]:
    """One entry of ``enqueue_many`` as (args, kwargs)."""
    if type(call) is tuple:
        return call, _NO_KWARGS
    if isinstance(call, Mapping):
        return (), call
    if isinstance(call, (str, bytes)) or not isinstance(call, Sequence):
        raise TypeError(
            f"each call given to enqueue_many must be a tuple of arguments or a dict of "
            f"keyword arguments, got {call!r}"
        )
    return call, {}


_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
            "h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}  # fmt: skip


_RATE = re.compile(r"(?P<count>\d+)/(?P<number>\d+(?:\.\d+)?)?(?P<unit>[a-z]+)")


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
    count, per = _parse_rate(rate_limit)
    return TaskLimit(concurrency_limit, count, per, rate_limit_key)


def _parse_rate(rate: str | tuple[int, float]) -> tuple[int, float]:
    if isinstance(rate, str):
        found = _RATE.fullmatch(rate.replace(" ", ""))
        if found is None or found["unit"] not in _PERIODS:
            raise ValueError(
                f"rate_limit must look like '10/s', '100/m', '1000/h' or '5/10s', got {rate!r}"
            )
        count = int(found["count"])
        per = float(found["number"] or 1) * _PERIODS[found["unit"]]
    else:
        count, per = rate
    check_count("rate_limit count", count)
    if not (isinstance(per, (int, float)) and 0 < per < float("inf")):
        raise ValueError(f"rate_limit period must be seconds > 0, got {per!r}")
    return count, float(per)
