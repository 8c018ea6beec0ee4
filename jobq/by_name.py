"""Enqueue by name: a job for a task that this process may not have registered
(:meth:`jobq.DurableQueue.enqueue_by_name`), for web code that does not import the
module of the worker's tasks.

Arguments are checked to be JSON here, and against the function's signature only
where the task is registered in this process. A worker that knows the task checks
them before it calls the function: arguments that do not fit end the job at once
as ``failed`` with the error ``ArgumentError`` (it could never succeed, so it is
not retried), see :func:`jobq.worker.failures.argument_error`.

Rule: imports basic values, the codec and the task options only; never the worker
or :mod:`jobq.queue`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from . import codec, defaults
from .storage.records import NewJob
from .task_options import JobOptions
from .tasks import Task

OPTION_NAMES = tuple(f.name for f in fields(JobOptions))
"""The options :meth:`~jobq.DurableQueue.enqueue_by_name` takes, those of ``Task.options``."""


def job_options(options: Mapping[str, Any]) -> JobOptions:
    """The checked :class:`~jobq.task_options.JobOptions`; TypeError names an unknown one."""
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise TypeError(
            f"enqueue_by_name() got unknown options {unknown}; it takes {', '.join(OPTION_NAMES)}"
        )
    return JobOptions(**options)


def new_job(
    task: Task[Any, Any] | None,
    name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    options: JobOptions,
) -> NewJob:
    """The job that runs task ``name`` with ``args`` and ``kwargs``: through ``task``
    (its signature, ``check`` and defaults) when this process registered it, else
    with the defaults of an undeclared task (queue ``"default"``, priority 0,
    3 attempts) unless ``options`` say otherwise. Raises TypeError for a bad name,
    arguments that are not a list and a dict of str keys, or are not JSON."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise TypeError(f"the task name must be a non-empty str, got {name!r}")
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise TypeError(f"args must be a list or tuple of positional arguments, got {args!r}")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise TypeError(f"kwargs must be a dict with str keys, got {kwargs!r}")
    if task is not None:
        return task.new_job(task.encode(tuple(args), dict(kwargs)), options)
    payload = codec.encode(
        {"args": list(args), "kwargs": dict(kwargs)}, name=f"the arguments of {name}"
    )
    return NewJob(
        name=name,
        payload=payload,
        queue=options.queue or defaults.QUEUE,
        priority=options.priority or 0,
        max_attempts=options.max_attempts or defaults.MAX_ATTEMPTS,
        run_at=options.run_at,
        unique_key=options.unique_key,
        expires_at=options.expires_at,
        on_duplicate=options.policy,
        throttle=options.throttle,
        depends_on=options.depends_on or (),
        on_dependency_failure=options.on_dependency_failure or "cancel",
    )
