"""The recurring-schedule half of :class:`~jobq.DurableQueue`'s interface:
declaring schedules (``schedule``, ``@periodic``), seeing and steering the stored
ones, and firing those that are due.

:class:`QueueSchedules` is a base class of ``DurableQueue`` and works through the
few queue members it declares. Rule: it imports the schedule rules
(:mod:`jobq.schedules`), tasks and storage, never the queue module itself.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from . import signals
from .clock import EpochClock
from .job import Job
from .schedules import (
    MissedPolicy,
    Schedule,
    ScheduleInfo,
    fire_due,
    jobs_of,
    set_paused,
    store_declared,
    stored_schedule,
)
from .schedules import info as schedule_info
from .storage.base import Storage, StorageError
from .tasks import NamedTask, Task

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("jobq.schedules")


class ScheduleHost(Protocol):
    """The queue members the schedule methods use; :class:`~jobq.DurableQueue` has them."""

    storage: Storage
    clock: EpochClock
    declared_schedules: dict[str, Schedule]
    _schedules_unstored: bool

    @property
    def task(self) -> Callable[..., Callable[[Callable[..., Any]], Task[Any, Any]]]: ...

    @property
    def schedule(self) -> Callable[..., Schedule]: ...

    def get_task(self, task_or_name: Task[Any, Any] | NamedTask | str) -> Task[Any, Any]: ...

    def _check_size(self, task_name: str, payload: str) -> str: ...

    def _wake(self, queue_name: str) -> None: ...


class QueueSchedules:
    """Schedule methods of :class:`~jobq.DurableQueue` (see each one)."""

    def schedule(
        self: ScheduleHost,
        task: Task[Any, Any] | str,
        *,
        cron: str | None = None,
        every: float | None = None,
        tz: str = "UTC",
        name: str | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        missed: MissedPolicy = "once",
        max_missed: int = 100,
        grace: float = 60.0,
    ) -> Schedule:
        """Run ``task`` on a cron expression or every ``every`` seconds; return the
        :class:`~jobq.schedules.Schedule`.

        The schedule is stored in the database here, when it is declared: from
        then on :meth:`schedules`, ``jobq schedules`` and the monitor show it,
        and it can be paused, resumed and triggered from any process, before
        any worker starts. Its first fire time is the next one after now. The
        processes whose worker pools run fire it (they look about once a
        second); each fire time becomes exactly one job, however many processes
        declare it and run workers.

        Declaring costs one read when the schedule is stored as it is (what
        every process but the first does at import: no write lock), one short
        write transaction otherwise. Declare it the same way wherever it is
        declared: when the stored description differs, the one declared last
        replaces it (its next fire time recomputed); a paused schedule stays
        paused. A schedule no longer declared anywhere stays stored, shown and
        steerable, but nothing fires it.

        If the database cannot be reached at that moment (a
        :class:`~jobq.StorageError`, e.g. PostgreSQL restarting, or a SQLite
        write lock held past the busy timeout), the declaration still succeeds
        and a warning is logged; the schedules this queue declares after that
        are not stored either (an import waits for an unreachable server once,
        not once per schedule). The first worker pool of this process to fire
        schedules stores them all, as does any other process declaring them: an
        import never fails because the database is briefly away.

        :param cron: five-field cron expression, e.g. ``"*/5 * * * *"`` or
            ``"0 3 * * MON-FRI"``, read in time zone ``tz`` (an IANA name).
        :param every: seconds between fires (>= 1), counted from the Unix epoch.
        :param name: unique name; default the task's name.
        :param args: positional arguments of every job (JSON values).
        :param kwargs: keyword arguments of every job (JSON values).
        :param missed: fire times missed while no worker ran (older than
            ``grace`` seconds): ``"once"`` runs one job for them all (default),
            ``"all"`` one per missed time (the last ``max_missed``), ``"skip"``
            none. See :mod:`jobq.schedules` for daylight-saving changes.

        Raises ConfigurationError for a bad expression, zone or option,
        :class:`~jobq.UnknownTask` for a task name not registered, TypeError for
        arguments that do not fit the task.
        """
        resolved = self.get_task(task)
        call = (tuple(args), dict(kwargs or {}))
        payload = self._check_size(resolved.name, resolved.encode(*call))
        job = resolved.new_job(payload, limit_key=resolved.limit_key_of(*call))
        made = Schedule(
            name or resolved.name,
            resolved.name,
            payload,
            cron,
            every,
            tz,
            missed,
            max_missed,
            grace,
            job.queue,
            job.priority,
            job.max_attempts,
            job.limit_key,
        )
        self.declared_schedules[made.name] = made
        if self._schedules_unstored:
            return made  # the database was away a moment ago: do not wait for it again
        try:
            store_declared(self.storage, made, now=self.clock.now())
        except StorageError as exc:
            self._schedules_unstored = True
            logger.warning(
                "jobq: schedule %r is declared but could not be stored (%s); neither are "
                "the schedules this process declares next: its workers store them when "
                "they fire schedules",
                made.name,
                exc,
            )
        return made

    def periodic(
        self: ScheduleHost,
        cron: str | None = None,
        *,
        every: float | None = None,
        tz: str = "UTC",
        name: str | None = None,
        missed: MissedPolicy = "once",
        **task_options: Any,
    ) -> Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function taking no arguments as a task and run it on a schedule:
        ``@queue.periodic("0 * * * *")`` or ``@queue.periodic(every=30)``.

        ``name`` names both the task and the schedule; other keywords are
        :meth:`task` options (``max_attempts``, ``queue``, ...). The schedule is
        stored when the decorator runs, as :meth:`schedule` describes.
        """
        if callable(cron):
            raise TypeError("give @queue.periodic a cron expression or every=...")

        def register(function: Callable[P, R]) -> Task[P, R]:
            task = cast("Task[P, R]", self.task(name, **task_options)(function))
            self.schedule(
                task, cron=cron, every=every, tz=tz, name=name or task.name, missed=missed
            )
            return task

        return register

    def schedules(self: ScheduleHost) -> builtins.list[ScheduleInfo]:
        """Every schedule stored in the database (declared by any process), by name,
        with its next and last fire times."""
        return [schedule_info(state) for state in self.storage.list_schedules()]

    def pause_schedule(self: ScheduleHost, name: str) -> ScheduleInfo:
        """Stop firing ``name`` in every process until :meth:`resume_schedule`.
        Raises :class:`~jobq.ScheduleNotFound` for an unknown schedule."""
        return set_paused(self.storage, name, True, now=self.clock.now())

    def resume_schedule(self: ScheduleHost, name: str) -> ScheduleInfo:
        """Fire ``name`` again, from its next fire time after now (what was missed
        while paused is skipped). Raises :class:`~jobq.ScheduleNotFound` if unknown."""
        return set_paused(self.storage, name, False, now=self.clock.now())

    def trigger_schedule(self: ScheduleHost, name: str) -> Job:
        """Enqueue the job of schedule ``name`` now, outside its fire times (which
        stay as they are). Raises :class:`~jobq.ScheduleNotFound` for an unknown schedule."""
        schedule = stored_schedule(self.storage, name)
        job = self.storage.enqueue(jobs_of(schedule, 1)[0], now=self.clock.now()).job
        self._wake(job.queue)
        if signals.job_enqueued.receivers:
            signals.emit(signals.job_enqueued, self, job=job)
        return job

    def fire_due_schedules(self: ScheduleHost, now: float | None = None) -> builtins.list[int]:
        """Enqueue the jobs of the declared schedules whose fire time has come (each
        fire time once across every process); return their ids. Worker pools call
        this about once a second; tests call it after advancing a fake clock."""
        if not self.declared_schedules:
            return []
        ids = fire_due(
            self.storage, self.declared_schedules, jobs_of, self.clock.now() if now is None else now
        )
        if ids:
            for queue_name in {s.queue for s in self.declared_schedules.values()}:
                self._wake(queue_name)
        return ids
