"""Registered tasks: functions a worker may run, found by name, never by pickled code.

One registry, several front doors: :class:`TaskRegistry` declares tasks with
their options checked once (:meth:`TaskSettings.checked`). ``DurableQueue.task``
is a door into the queue's own registry; the Flask extension's ``JobQ.task``
declares into a registry of its own, before any app exists, and adds each task
as declared to every app's queue (:meth:`TaskRegistry.add`).

A :class:`Task` keeps its function's signature (calling the task calls the
function) and gains ``.enqueue(...)``, typed with the same parameters, so mypy
checks what is enqueued. A task turns a call into a :class:`~jobq.storage.base.NewJob`
itself and hands it to its queue through the narrow :class:`JobStore` protocol;
the queue never calls back into the task.

Rule: tasks sit above storage (``storage.base``), the codec and the basic values;
this module never imports the queue, a worker, the command line or Flask.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from . import backoff as backoffs
from . import codec, defaults
from .backoff import Backoff
from .errors import ConfigurationError
from .job import Job
from .storage.base import NewJob, TaskLimit
from .validate import check_count, check_priority, check_seconds, parse_rate

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_QUEUE = defaults.QUEUE
DEFAULT_MAX_ATTEMPTS = defaults.MAX_ATTEMPTS

ArgumentCheck = Callable[[Mapping[str, Any]], None]
"""A task's ``check=``: receives the arguments of a call as bound to the function's
parameters (name to value, defaults filled in) and raises ValueError for arguments
that can never succeed."""


class NamedTask(Protocol):
    """Anything that names a registered task, such as ``flask_jobq.handlers.send_email``:
    a queue resolves it by its ``name`` in its own registry."""

    @property
    def name(self) -> str: ...


class JobStore(Protocol):
    """What a task needs of a queue to store its jobs; :class:`~jobq.DurableQueue` is one.

    The task has checked and encoded the arguments; the store applies its own
    limits (payload size), turns ``delay`` into a start time on its clock, and
    stores the jobs.
    """

    def enqueue_job(self, job: NewJob, *, delay: float | None = None) -> Job:
        """Store ``job``; return it as stored."""
        ...

    def enqueue_jobs(
        self, template: NewJob, payloads: Iterable[str], *, delay: float | None = None
    ) -> list[int]:
        """Store one job like ``template`` per payload, in one transaction; return their ids."""
        ...


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


_NO_OPTIONS = JobOptions()
# NewJob(...) without keyword handling: new_job runs on every enqueue.
_new_job: Callable[[Iterable[Any]], NewJob] = functools.partial(tuple.__new__, NewJob)


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


class Task(Generic[P, R]):
    """A function registered as a task.

    Call it to run the function here and now; ``.enqueue(...)`` to store a job
    that a worker runs later. Its :class:`TaskSettings` are the defaults of its
    jobs; they are readable as attributes (read-only properties):

    :ivar name: the registered name jobs refer to.
    :ivar max_attempts: attempts before a job fails for good (>= 1).
    :ivar backoff: ``backoff(attempt) -> seconds`` before the next attempt.
    :ivar priority: default job priority.
    :ivar queue: default queue name.
    :ivar timeout: seconds an attempt may run before it fails as timed out
        (the thread itself cannot be stopped), or None.
    :ivar limits: limits on its jobs across every process (concurrency, rate),
        or None.
    :ivar check: the argument check run at every enqueue, or None.
    """

    def __init__(
        self, fn: Callable[P, R], name: str, settings: TaskSettings, owner: JobStore | None = None
    ) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = name
        self.settings = settings
        self._owner = owner
        self._signature = inspect.signature(fn)
        self._arities: set[int] = set()  # numbers of positional arguments that bind

    @property
    def max_attempts(self) -> int:
        return self.settings.max_attempts

    @property
    def backoff(self) -> Backoff:
        return self.settings.backoff

    @property
    def priority(self) -> int:
        return self.settings.priority

    @property
    def queue(self) -> str:
        return self.settings.queue

    @property
    def timeout(self) -> float | None:
        return self.settings.timeout

    @property
    def limits(self) -> TaskLimit | None:
        return self.settings.limits

    @property
    def check(self) -> ArgumentCheck | None:
        return self.settings.check

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    @property
    def owner(self) -> JobStore:
        """The queue ``.enqueue`` stores jobs in. A subclass may resolve it at each
        call (flask_jobq uses the current app's). Raises RuntimeError when there is none."""
        if self._owner is None:
            raise RuntimeError(f"task {self.name} is bound to no queue")
        return self._owner

    def bind(self, owner: JobStore) -> Task[P, R]:
        """This task, as declared (function, name, settings), enqueueing on ``owner``."""
        return Task(self.fn, self.name, self.settings, owner)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Store a job that runs this task with these arguments; return it.

        Raises TypeError, writing nothing, when the arguments do not fit the
        function's signature or are not JSON-serialisable, and ValueError when
        the task's ``check`` refuses them.
        """
        return self.owner.enqueue_job(self.new_job(self.encode(args, kwargs)))

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
        return BoundTask(self, JobOptions(**options)).enqueue_many(calls)

    def new_job(self, payload: str, options: JobOptions = _NO_OPTIONS) -> NewJob:
        """The job to store for ``payload`` (from :meth:`encode`): the task's settings,
        overridden by ``options`` (whose ``delay`` the store applies)."""
        settings = self.settings
        if options is _NO_OPTIONS:
            return _new_job(
                (
                    self.name,
                    payload,
                    settings.queue,
                    settings.priority,
                    settings.max_attempts,
                    None,
                    None,
                )
            )
        return NewJob(
            name=self.name,
            payload=payload,
            queue=options.queue or settings.queue,
            priority=settings.priority if options.priority is None else options.priority,
            max_attempts=options.max_attempts or settings.max_attempts,
            run_at=options.run_at,
            unique_key=options.unique_key,
        )

    def encode(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        """Check arguments against the signature and the task's ``check``; return the
        JSON payload. Raises TypeError (signature, JSON) or ValueError (``check``)."""
        if self.settings.check is not None:
            return self._encode_checked(args, kwargs, self.settings.check)
        if kwargs or len(args) not in self._arities:
            self._bind(args, kwargs)
            if not kwargs:
                # Positional arguments alone bind or not by their number only.
                self._arities.add(len(args))
        return self._encode(args, kwargs)

    def _encode_checked(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], check: ArgumentCheck
    ) -> str:
        bound = self._bind(args, kwargs)
        payload = self._encode(args, kwargs)
        bound.apply_defaults()
        try:
            check(bound.arguments)
        except ValueError as exc:
            raise ValueError(f"cannot enqueue {self.name}: {exc}") from None
        return payload

    def _bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> inspect.BoundArguments:
        try:
            return self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"cannot enqueue {self.name}: {exc}") from None

    def _encode(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
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
        task, options = self.task, self.job_options
        job = task.new_job(task.encode(args, kwargs), options)
        return task.owner.enqueue_job(job, delay=options.delay)

    def enqueue_many(self, calls: Iterable[Sequence[Any] | Mapping[str, Any]]) -> list[int]:
        """As :meth:`Task.enqueue_many`, with these options."""
        task, options = self.task, self.job_options
        owner = task.owner
        encode = task.encode
        payloads = (encode(*split_call(call)) for call in calls)
        return owner.enqueue_jobs(task.new_job("", options), payloads, delay=options.delay)

    def options(self, **changes: Any) -> BoundTask[P, R]:
        """These options with some changed."""
        return BoundTask(self.task, replace(self.job_options, **changes))


class TaskRegistry:
    """Tasks by name, declared once with checked options; the one registry behind
    every front door (``DurableQueue.task``, the Flask extension's ``JobQ.task``).

    :param owner: the queue the tasks of this registry enqueue on; None for a
        registry of declarations that are added to queues later (the Flask
        extension's), whose tasks resolve their queue themselves.
    :param task_class: the class of the tasks it makes (a subclass of
        :class:`Task` taking the same arguments).
    :param door: how users spell the decorator, for error messages
        (``"@queue.task"``).
    """

    def __init__(
        self,
        owner: JobStore | None = None,
        *,
        task_class: type[Task[Any, Any]] = Task,
        door: str = "@queue.task",
    ) -> None:
        self.owner = owner
        self.task_class = task_class
        self.door = door
        self.tasks: dict[str, Task[Any, Any]] = {}
        """The registered tasks by name."""
        self.limits: dict[str, TaskLimit] = {}
        """The limits of the registered tasks that have any, by task name."""

    def task(
        self, name: str | None = None, **options: Any
    ) -> Callable[[Callable[P, R]], Task[P, R]]:
        """A decorator registering a function as a task with these options (see
        :meth:`TaskSettings.checked`), checked now. Raises TypeError for a bare
        ``@...task`` (no parentheses), ValueError or TypeError for a bad option,
        and, when decorating, ConfigurationError if another function has the name."""
        if callable(name):
            raise TypeError(f"use {self.door}() with parentheses, not {self.door}")
        settings = TaskSettings.checked(**options)

        def register(function: Callable[P, R]) -> Task[P, R]:
            task_name = name or f"{function.__module__}.{function.__qualname__}"
            made: Task[P, R] = self.task_class(function, task_name, settings, self.owner)
            return self.add(made)

        return register

    def add(self, task: Task[P, R]) -> Task[P, R]:
        """Register ``task`` as declared (bound to this registry's owner when it has
        one and the task is not bound to it); return the registered task. Raises
        ConfigurationError if another function is registered under its name."""
        existing = self.tasks.get(task.name)
        if existing is not None and existing.fn is not task.fn:
            raise ConfigurationError(
                f"a different function is already registered as task {task.name!r}; "
                f"give one of them another name with {self.door}(name=...)"
            )
        if self.owner is not None and task._owner is not self.owner:
            task = task.bind(self.owner)
        self.tasks[task.name] = task
        if task.limits is None:
            self.limits.pop(task.name, None)
        else:
            self.limits[task.name] = task.limits
        return task

    def get(self, name: str) -> Task[Any, Any] | None:
        """The task registered as ``name``, or None."""
        return self.tasks.get(name)

    def __iter__(self) -> Iterator[Task[Any, Any]]:
        return iter(list(self.tasks.values()))

    def __len__(self) -> int:
        return len(self.tasks)


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
