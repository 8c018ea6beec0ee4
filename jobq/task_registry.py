"""The task registry: tasks by name, declared once with checked options.

Every front door declares into one: ``DurableQueue.task`` into the queue's own,
the Flask extension's ``JobQ.task`` into one of its own whose tasks are added to
every app's queue (:meth:`TaskRegistry.add`).

Rule: imports :mod:`jobq.tasks` and what it builds on; never the queue, a worker
or Flask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

from .errors import ConfigurationError
from .storage._limits import rate_windows
from .storage.base import TaskLimit
from .task_options import TaskSettings
from .tasks import JobStore, Task

P = ParamSpec("P")
R = TypeVar("R")


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
        ConfigurationError if another function is registered under its name, or if
        it shares a ``rate_limit_key`` with a task giving that window another rate
        (or one per limit key and one not)."""
        existing = self.tasks.get(task.name)
        if existing is not None and existing.fn is not task.fn:
            raise ConfigurationError(
                f"a different function is already registered as task {task.name!r}; "
                f"give one of them another name with {self.door}(name=...)"
            )
        if task.limits is not None:
            try:
                rate_windows({**self.limits, task.name: task.limits})
            except ValueError as exc:
                raise ConfigurationError(f"task {task.name}: {exc}") from None
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
