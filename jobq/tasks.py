"""Registered tasks: functions a worker may run, found by name, never by pickled code.

Tasks are declared through one registry (:mod:`jobq.task_registry`) with their
options checked once (:meth:`TaskSettings.checked`), whichever front door
declares them (``DurableQueue.task``, the Flask extension's ``JobQ.task``).

A :class:`Task` keeps its function's signature (calling the task calls the
function) and gains ``.enqueue(...)``, typed with the same parameters, so mypy
checks what is enqueued. A task turns a call into a :class:`~jobq.storage.base.NewJob`
itself and hands it to its queue through the narrow :class:`JobStore` protocol;
the queue never calls back into the task. The options themselves, of a task
and of one enqueue, are in :mod:`jobq.task_options`.

Rule: tasks sit above storage (``storage.base``), the codec and the basic values;
this module never imports the queue, a worker, the command line or Flask.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from . import codec, limit_keys
from .backoff import Backoff
from .chains import Signature
from .job import Job
from .limit_keys import LimitKey
from .retry_rules import RetryRules
from .storage.base import NewJob, TaskLimit
from .task_options import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_QUEUE,
    ArgumentCheck,
    JobOptions,
    TaskSettings,
    dependency_ids,
    task_limits,
)
from .unique import OnDuplicate

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_QUEUE",
    "ArgumentCheck",
    "BoundTask",
    "JobOptions",
    "JobStore",
    "NamedTask",
    "Task",
    "TaskSettings",
    "split_call",
    "store_calls",
    "task_limits",
]

P = ParamSpec("P")
R = TypeVar("R")


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

    def enqueue_job(
        self, job: NewJob, *, delay: float | None = None, expires_in: float | None = None
    ) -> Job:
        """Store ``job``; return it as stored."""
        ...

    def enqueue_jobs(
        self,
        template: NewJob,
        payloads: Iterable[str],
        *,
        delay: float | None = None,
        expires_in: float | None = None,
        limit_keys: Sequence[str | None] | None = None,
    ) -> list[int]:
        """Store one job like ``template`` per payload, in one transaction; return their
        ids. ``limit_keys``, when given, holds each job's ``limit_key`` in order."""
        ...


_NO_OPTIONS = JobOptions()
# NewJob(...) without keyword handling: new_job runs on every enqueue.
_new_job: Callable[[Iterable[Any]], NewJob] = functools.partial(tuple.__new__, NewJob)
# The defaults of the fields after limit_key (on_duplicate, throttle, ...), in order.
_DEFAULTS_AFTER_LIMIT_KEY = tuple(
    NewJob._field_defaults[field]
    for field in NewJob._fields[NewJob._fields.index("limit_key") + 1 :]
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
    :ivar retry_rules: its checked ``retry_on`` and ``discard_on``, or None.
    :ivar isolation: ``"thread"`` (default) or ``"process"``: where its attempts run.
    :ivar limit_key: what groups its jobs for per-key limits (a parameter name or a
        callable of its arguments), or None.
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
        if settings.limit_key is not None:
            limit_keys.check_parameter(name, settings.limit_key, self._signature)

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

    @property
    def retry_rules(self) -> RetryRules | None:
        return self.settings.retry_rules

    @property
    def isolation(self) -> str:
        return self.settings.isolation

    @property
    def limit_key(self) -> LimitKey | None:
        return self.settings.limit_key

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
        job = self.job_for(args, kwargs)
        if self.settings.expires_in is None:
            return self.owner.enqueue_job(job)
        return self.owner.enqueue_job(job, expires_in=self.settings.expires_in)

    def options(
        self,
        *,
        priority: int | None = None,
        delay: float | None = None,
        run_at: float | None = None,
        max_attempts: int | None = None,
        unique_key: str | None = None,
        queue: str | None = None,
        expires_in: float | None = None,
        expires_at: float | None = None,
        on_duplicate: OnDuplicate | None = None,
        debounce: float | None = None,
        throttle: float | None = None,
        depends_on: Iterable[Job | int] | None = None,
        on_dependency_failure: str | None = None,
    ) -> BoundTask[P, R]:
        """Enqueue with options kept apart from the arguments (see :class:`JobOptions`)::

        send_report.options(delay=3600, unique_key=f"report-{user_id}").enqueue(user_id)
        reindex.options(unique_key=f"doc-{doc_id}", debounce=30).enqueue(doc_id)
        notify.options(depends_on=[export_job]).enqueue(user_id)
        """
        options = JobOptions(
            priority,
            delay,
            run_at,
            max_attempts,
            unique_key,
            queue,
            expires_in=expires_in,
            expires_at=expires_at,
            on_duplicate=on_duplicate,
            debounce=debounce,
            throttle=throttle,
            depends_on=dependency_ids(depends_on),
            on_dependency_failure=on_dependency_failure,
        )
        return BoundTask(self, options)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A step of a chain (:meth:`DurableQueue.chain <jobq.DurableQueue.chain>`) that
        runs this task with the result of the step before it as its first positional
        argument, then ``args`` and ``kwargs`` (the first step of a chain gets no
        result: just ``args``). Checked against the signature when the chain is
        enqueued."""
        return Signature(self, args, kwargs, takes_result=True)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """A step of a chain that runs this task with exactly ``args`` and ``kwargs``,
        ignoring the result of the step before it (Celery's immutable signature)."""
        return Signature(self, args, kwargs, takes_result=False)

    def enqueue_many(
        self, calls: Iterable[Sequence[Any] | Mapping[str, Any]], **options: Any
    ) -> list[int]:
        """Store one job per call in one transaction; return their ids.

        Each call is a tuple (or list) of positional arguments, or a dict of
        keyword arguments; wrap a single dict argument as ``(d,)``. Every call
        is checked before anything is written. ``options`` as in :meth:`options`.
        """
        return BoundTask(self, JobOptions(**options)).enqueue_many(calls)

    def job_for(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], options: JobOptions = _NO_OPTIONS
    ) -> NewJob:
        """The job to store for a call: :meth:`encode`, then :meth:`new_job` with the
        call's limit key. Raises as :meth:`encode` and :meth:`limit_key_of` do."""
        payload = self.encode(args, kwargs)
        if self.settings.limit_key is None:
            return self.new_job(payload, options)
        return self.new_job(payload, options, self.limit_key_of(args, kwargs))

    def limit_key_of(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
        """The ``limit_key`` of a call whose arguments fit the signature, or None for
        a task without one. Raises ValueError when the task's ``limit_key`` raises or
        gives an unusable str, TypeError when it gives neither str, int nor None."""
        if self.settings.limit_key is None:
            return None
        return limit_keys.key_of(self.name, self.settings.limit_key, self._signature, args, kwargs)

    def new_job(
        self, payload: str, options: JobOptions = _NO_OPTIONS, limit_key: str | None = None
    ) -> NewJob:
        """The job to store for ``payload`` (from :meth:`encode`): the task's settings,
        overridden by ``options`` (whose ``delay`` the store applies), in the per-key
        limits' group ``limit_key`` (from :meth:`limit_key_of`)."""
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
                    None,
                    limit_key,
                    *_DEFAULTS_AFTER_LIMIT_KEY,
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
            expires_at=options.expires_at,
            limit_key=limit_key,
            on_duplicate=options.policy,
            throttle=options.throttle,
            depends_on=options.depends_on or (),
            on_dependency_failure=options.on_dependency_failure or "cancel",
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
        job = task.job_for(args, kwargs, options)
        expires_in = options.expiry_after(task.settings.expires_in)
        if expires_in is not None:
            return task.owner.enqueue_job(job, delay=options.start_delay, expires_in=expires_in)
        return task.owner.enqueue_job(job, delay=options.start_delay)

    def enqueue_many(self, calls: Iterable[Sequence[Any] | Mapping[str, Any]]) -> list[int]:
        """As :meth:`Task.enqueue_many`, with these options."""
        return store_calls(self.task, self.task.owner, calls, self.job_options)

    def options(self, **changes: Any) -> BoundTask[P, R]:
        """These options with some changed."""
        return BoundTask(self.task, replace(self.job_options, **changes))


_NO_KWARGS: Mapping[str, Any] = {}


def store_calls(
    task: Task[Any, Any],
    store: JobStore,
    calls: Iterable[Sequence[Any] | Mapping[str, Any]],
    options: JobOptions,
) -> list[int]:
    """Store one job of ``task`` per call in ``store``, in one transaction; their ids
    (``enqueue_many``). Every call is checked before anything is written."""
    template = task.new_job("", options)
    expires_in = options.expiry_after(task.settings.expires_in)
    delay = options.start_delay
    if task.settings.limit_key is None:
        payloads = (task.encode(*split_call(call)) for call in calls)
        return store.enqueue_jobs(template, payloads, delay=delay, expires_in=expires_in)
    split = [split_call(call) for call in calls]
    encoded = [task.encode(args, kwargs) for args, kwargs in split]
    keys = [task.limit_key_of(args, kwargs) for args, kwargs in split]
    return store.enqueue_jobs(
        template, encoded, delay=delay, expires_in=expires_in, limit_keys=keys
    )


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
