"""Recurring schedules: a task run on a cron expression or at a fixed interval.

Every process that declares a schedule may fire it, and each fire time becomes
exactly one job however many processes or hosts run workers: the schedule's
row in the database holds its next fire time, and a fire is a
compare-and-set of that time made in the same transaction as the enqueue
(:meth:`~jobq.storage.base.Storage.fire_schedule`). No leader is elected and
no lock is held between fires.

Cron expressions are read by `cronsim <https://pypi.org/project/cronsim/>`_, a
small, dependency-free library maintained by the author of Healthchecks.io,
which runs it on millions of checks; it follows Debian cron's rules,
including for daylight-saving changes:

- a time of day that does not exist on a spring-forward day (02:30 when
  clocks jump from 02:00 to 03:00) fires at the first minute after the jump;
- a time of day that happens twice on a fall-back day fires once, at its
  first occurrence;
- expressions that run every minute or every hour (``*`` in the minute or
  hour field) simply follow the wall clock, so on a fall-back day an hourly
  job runs 25 times and on a spring-forward day 23 times.

Intervals (``every=300``) are counted in seconds of real time from the Unix
epoch (so every process computes the same fire times) and ignore time zones.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from .errors import ConfigurationError, ScheduleNotFound
from .storage.base import NewJob, ScheduleState, Storage

MissedPolicy = Literal["once", "all", "skip"]
MISSED_POLICIES = ("once", "all", "skip")


@dataclass(frozen=True)
class Schedule:
    """One recurring schedule. Made by :meth:`DurableQueue.schedule
    <jobq.DurableQueue.schedule>` and :meth:`~jobq.DurableQueue.periodic`.

    :param name: unique name, shown and used to pause, resume and trigger it.
    :param task: the registered task name its jobs run.
    :param payload: the jobs' arguments as stored JSON text.
    :param cron: a five-field cron expression (``"*/5 * * * *"``), or None.
    :param every: seconds between fires, or None (exactly one of the two).
    :param tz: IANA time zone the cron expression is read in (default UTC).
    :param missed: what happens to fire times missed while no worker ran
        (older than ``grace``): ``"once"`` (default) runs them as one job,
        ``"all"`` runs one job per missed time (at most ``max_missed``),
        ``"skip"`` drops them and waits for the next fire time.
    :param max_missed: with ``missed="all"``, the most missed fires run.
    :param grace: seconds after its fire time a fire still counts as on time.
    :param queue: the queue its jobs go to (the task's).
    :param priority: its jobs' priority (the task's).
    :param max_attempts: its jobs' attempts (the task's).
    :param limit_key: its jobs' limit key (from the task's ``limit_key`` and the
        schedule's arguments), or None.
    """

    name: str
    task: str
    payload: str
    cron: str | None = None
    every: float | None = None
    tz: str = "UTC"
    missed: MissedPolicy = "once"
    max_missed: int = 100
    grace: float = 60.0
    queue: str = "default"
    priority: int = 0
    max_attempts: int = 3
    limit_key: str | None = None
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a schedule needs a non-empty name, got {self.name!r}")
        if (self.cron is None) == (self.every is None):
            raise ConfigurationError(
                f"schedule {self.name!r}: give either cron= or every=, not both or neither"
            )
        try:
            zone = ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigurationError(
                f"schedule {self.name!r}: unknown time zone {self.tz!r} (use an IANA name "
                "such as 'Europe/Paris')"
            ) from exc
        object.__setattr__(self, "_zone", zone)
        if self.cron is not None:
            if not isinstance(self.cron, str) or len(self.cron.split()) != 5:
                raise ConfigurationError(
                    f"schedule {self.name!r}: cron must have five fields (minute hour "
                    f"day-of-month month day-of-week), got {self.cron!r}"
                )
            try:
                CronSim(self.cron, datetime.now(zone))
            except CronSimError as exc:
                raise ConfigurationError(
                    f"schedule {self.name!r}: bad cron expression {self.cron!r}: {exc}"
                ) from None
        if self.every is not None and not (
            isinstance(self.every, (int, float)) and 1 <= self.every < math.inf
        ):
            raise ConfigurationError(
                f"schedule {self.name!r}: every must be at least 1 second, got {self.every!r}"
            )
        if self.missed not in MISSED_POLICIES:
            raise ConfigurationError(
                f"schedule {self.name!r}: missed must be 'once', 'all' or 'skip', "
                f"got {self.missed!r}"
            )
        if isinstance(self.max_missed, bool) or not (
            isinstance(self.max_missed, int) and self.max_missed >= 1
        ):
            raise ConfigurationError(f"max_missed must be an integer >= 1, got {self.max_missed!r}")
        if not (isinstance(self.grace, (int, float)) and 0 <= self.grace < math.inf):
            raise ConfigurationError(f"grace must be seconds >= 0, got {self.grace!r}")

    def next_after(self, moment: float) -> float:
        """The first fire time strictly after ``moment`` (epoch seconds)."""
        if self.every is not None:
            return (math.floor(moment / self.every) + 1) * self.every
        assert self.cron is not None
        start = datetime.fromtimestamp(moment, self._zone)
        return next(CronSim(self.cron, start)).timestamp()

    def plan(self, due: float, now: float) -> tuple[list[float], float]:
        """For the stored next fire time ``due`` (<= ``now``): the fire times that
        get a job under the missed-fire policy, and the next fire time after ``now``."""
        times = [due]
        upcoming = self.next_after(due)
        while upcoming <= now:
            times.append(upcoming)
            upcoming = self.next_after(upcoming)
            if len(times) > self.max_missed + 1:  # nothing older is needed
                del times[0]
        on_time = [t for t in times if now - t <= self.grace]
        missed = [t for t in times if now - t > self.grace]
        if not missed:
            return on_time, upcoming
        if self.missed == "skip":
            return on_time, upcoming
        if self.missed == "once":
            return [times[-1]], upcoming
        return (missed + on_time)[-self.max_missed :], upcoming

    def spec(self) -> str:
        """JSON text describing the schedule, stored so any process can show,
        trigger or resume it (see :meth:`from_spec`)."""
        # limit_key only when there is one: the spec of every other schedule stays
        # as stored, so an upgrade does not rewrite (and reschedule) them.
        extra = {} if self.limit_key is None else {"limit_key": self.limit_key}
        return json.dumps(
            {
                **extra,
                "task": self.task,
                "payload": self.payload,
                "cron": self.cron,
                "every": self.every,
                "tz": self.tz,
                "missed": self.missed,
                "max_missed": self.max_missed,
                "grace": self.grace,
                "queue": self.queue,
                "priority": self.priority,
                "max_attempts": self.max_attempts,
            },
            sort_keys=True,
        )

    @classmethod
    def from_spec(cls, name: str, spec: str) -> Schedule:
        """The schedule a stored spec describes."""
        data = json.loads(spec)
        return cls(
            name,
            data["task"],
            data["payload"],
            data.get("cron"),
            data.get("every"),
            data.get("tz", "UTC"),
            data.get("missed", "once"),
            data.get("max_missed", 100),
            data.get("grace", 60.0),
            data.get("queue", "default"),
            data.get("priority", 0),
            data.get("max_attempts", 3),
            data.get("limit_key"),
        )

    def describe(self) -> str:
        """``"cron '0 3 * * *' (Europe/Paris)"`` or ``"every 300 s"``."""
        if self.every is not None:
            return f"every {self.every:g} s"
        return f"cron {self.cron!r} ({self.tz})"


@dataclass(frozen=True)
class ScheduleInfo:
    """A schedule as any process sees it, from :meth:`DurableQueue.schedules
    <jobq.DurableQueue.schedules>`.

    :param name: the schedule's name.
    :param task: the task its jobs run.
    :param cron: its cron expression, or None.
    :param every: its interval in seconds, or None.
    :param tz: the time zone of its cron expression.
    :param args: the jobs' positional arguments.
    :param kwargs: the jobs' keyword arguments.
    :param missed: its missed-fire policy.
    :param next_fire_at: the next fire time (epoch seconds).
    :param last_fire_at: the last fire time that enqueued a job, or None.
    :param last_job_id: the id of that job, or None.
    :param paused: True while paused.
    """

    name: str
    task: str
    cron: str | None
    every: float | None
    tz: str
    args: Sequence[Any]
    kwargs: Mapping[str, Any]
    missed: MissedPolicy
    next_fire_at: float
    last_fire_at: float | None
    last_job_id: int | None
    paused: bool

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {
            "name": self.name,
            "task": self.task,
            "cron": self.cron,
            "every": self.every,
            "tz": self.tz,
            "args": list(self.args),
            "kwargs": dict(self.kwargs),
            "missed": self.missed,
            "next_fire_at": self.next_fire_at,
            "last_fire_at": self.last_fire_at,
            "last_job_id": self.last_job_id,
            "paused": self.paused,
        }


def info(state: ScheduleState) -> ScheduleInfo:
    """What a stored schedule says about itself. Read from its JSON alone, so a
    process that could not run it (say its time zone is unknown here) can still
    show it."""
    data = json.loads(state.spec)
    call = json.loads(data["payload"])
    return ScheduleInfo(
        state.name,
        data["task"],
        data.get("cron"),
        data.get("every"),
        data.get("tz", "UTC"),
        call["args"],
        call["kwargs"],
        data.get("missed", "once"),
        state.next_fire_at,
        state.last_fire_at,
        state.last_job_id,
        state.paused,
    )


def store_declared(storage: Storage, schedule: Schedule, *, now: float) -> ScheduleState:
    """Store ``schedule`` as declared at ``now``, unless it is stored already as it is.

    A new schedule's first fire time is the next one after ``now``. One that is
    stored with another description is replaced by this one (its next fire time
    recomputed; paused stays paused, and its last fire is kept). Reading first
    means that declaring an unchanged schedule, as every process does at import,
    takes no write lock; several processes storing it at once end with one row.
    """
    for state in storage.list_schedules():
        if state.name == schedule.name and state.spec == schedule.spec():
            return state
    return storage.upsert_schedule(
        schedule.name, schedule.spec(), schedule.next_after(now), now=now
    )


def fire_due(
    storage: Storage,
    declared: Mapping[str, Schedule],
    jobs_for: Callable[[Schedule, int], list[NewJob]],
    now: float,
) -> list[int]:
    """Fire every declared schedule that is due at ``now``; return the new job ids.

    Schedules not yet stored (their declaration could not reach the database),
    or stored with another description, are stored first as
    :func:`store_declared` does. A fire another process made first is left to it.
    """
    stored = {state.name: state for state in storage.list_schedules()}
    ids: list[int] = []
    for name, schedule in declared.items():
        state = stored.get(name)
        if state is None or state.spec != schedule.spec():
            state = storage.upsert_schedule(
                name, schedule.spec(), schedule.next_after(now), now=now
            )
        if state.paused or state.next_fire_at > now:
            continue
        times, upcoming = schedule.plan(state.next_fire_at, now)
        fired = storage.fire_schedule(
            name, state.next_fire_at, upcoming, jobs_for(schedule, len(times)), now=now
        )
        if fired:
            ids.extend(fired)
    return ids


def jobs_of(schedule: Schedule, count: int) -> list[NewJob]:
    """``count`` copies of the job ``schedule`` enqueues. Its options were stored
    with the schedule, so a process that does not know the task (the command
    line, the web app) enqueues the same job as a worker would."""
    job = NewJob(
        schedule.task,
        schedule.payload,
        schedule.queue,
        schedule.priority,
        schedule.max_attempts,
        limit_key=schedule.limit_key,
    )
    return [job] * count


def stored_schedule(storage: Storage, name: str) -> Schedule:
    """The schedule ``name`` as stored by whichever process declared it.
    Raises :class:`~jobq.ScheduleNotFound`."""
    for state in storage.list_schedules():
        if state.name == name:
            return Schedule.from_spec(state.name, state.spec)
    raise ScheduleNotFound(name)


def set_paused(storage: Storage, name: str, paused: bool, *, now: float) -> ScheduleInfo:
    """Pause or resume the stored schedule ``name`` for every process; resuming
    skips what was missed. Raises :class:`~jobq.ScheduleNotFound`."""
    schedule = stored_schedule(storage, name)
    upcoming = None if paused else schedule.next_after(now)
    state = storage.set_schedule_paused(name, paused, now=now, next_fire_at=upcoming)
    if state is None:
        raise ScheduleNotFound(name)
    return info(state)
