"""The values the storage contract passes in and out: jobs to enqueue, what a call
did, counts, limits and schedule states. :mod:`jobq.storage.base` re-exports
them with the :class:`~jobq.storage.base.Storage` protocol.

Rule: imports basic values only (``job``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from ..job import Job, JobStatus


class NewJob(NamedTuple):
    """A job to enqueue (a tuple, so thousands are cheap to build).

    :param name: registered task name, a non-empty ``str``.
    :param payload: the arguments as JSON text (``str``), already encoded.
    :param queue: queue name. Default ``"default"``.
    :param priority: integer, higher runs first. Default 0.
    :param max_attempts: attempts allowed, integer >= 1. Default 3.
    :param run_at: earliest start, epoch seconds; None (default) for ``now``.
    :param unique_key: while a job of the same task (``name``) with this key is
        pending or processing, enqueueing another returns the existing one, in
        whatever queue it is. Keys are scoped to their task: another task may use
        the same key for a job of its own. Default None.
    :param expires_at: epoch seconds after which the job must not start: still
        pending then (waiting to run, or for a retry), it ends ``cancelled`` with
        the error ``Expired`` instead (see :meth:`Storage.expire_jobs`). None
        (default) for never.
    :param limit_key: the group the task's per-key limits count the job in (e.g.
        an account id), from the task's ``limit_key``; None for the task's one
        keyless group. Meaningful only for a task claimed with a per-key
        :class:`TaskLimit`. Default None.
    :param on_duplicate: what an enqueue does when a job of the same task holds
        ``unique_key``: ``"keep"`` (default) returns that job unchanged;
        ``"replace"`` gives a *pending* holder this job's ``payload``, ``priority``
        and ``run_at`` (its id, queue, ``max_attempts`` and attempts stay) and
        returns it; a *processing* holder is left as it runs, gives up the key
        (its ``unique_key`` becomes None) and this job is inserted, so the last
        arguments still run. ``"replace"`` needs a ``unique_key``.
    :param throttle: seconds (> 0), with ``on_duplicate="keep"`` and a
        ``unique_key``: if a job of the same task with this key was *created*
        less than ``throttle`` seconds before ``now``, whatever its status (ended
        ones too), it is returned and nothing is inserted. Default None.
    :param depends_on: ids of jobs this one waits for: it stays pending but
        unclaimable (*waiting*) until all of them have completed. Default ``()``.
        Not with ``unique_key``. See :mod:`jobq.storage.dependencies`.
    :param on_dependency_failure: when a dependency ends failed or cancelled:
        ``"cancel"`` (default) ends this job cancelled, ``"fail"`` ends it failed,
        ``"run"`` counts that dependency as done.
    :param takes_result: in :meth:`Storage.enqueue_chain`, this job receives the
        result of the job before it as its first positional argument. Default False.
    """

    name: str
    payload: str
    queue: str = "default"
    priority: int = 0
    max_attempts: int = 3
    run_at: float | None = None
    unique_key: str | None = None
    expires_at: float | None = None
    limit_key: str | None = None
    on_duplicate: str = "keep"
    throttle: float | None = None
    depends_on: tuple[int, ...] = ()
    on_dependency_failure: str = "cancel"
    takes_result: bool = False


class Enqueued(NamedTuple):
    """What :meth:`Storage.enqueue` did: the stored ``job``, and whether it is new
    (``created`` False when a live job with the same ``unique_key`` was returned),
    and whether that existing pending job took this enqueue's arguments and run
    time (``replaced``, with ``on_duplicate="replace"``)."""

    job: Job
    created: bool
    replaced: bool = False


class Completion(NamedTuple):
    """One entry of :meth:`Storage.complete_many`: job id, lease token, result JSON text."""

    job_id: int
    lease_token: str
    result: str | None = None


@dataclass(frozen=True)
class RenewResult:
    """Outcome of :meth:`Storage.renew`, as sets of job ids.

    :param renewed: leases extended.
    :param lost: leases no longer held (rescued, taken over, finished or
        unknown); the worker should stop those jobs, their outcome is ignored.
    :param cancel_requested: renewed jobs whose cancel was requested; the
        worker should stop them and call :meth:`Storage.finish_cancelled`.
    """

    renewed: frozenset[int]
    lost: frozenset[int]
    cancel_requested: frozenset[int]


@dataclass(frozen=True)
class RescueResult:
    """Outcome of :meth:`Storage.rescue_expired`: ids of the jobs whose lease had
    expired, by what became of them."""

    requeued: tuple[int, ...] = ()
    failed: tuple[int, ...] = ()
    cancelled: tuple[int, ...] = ()

    @property
    def total(self) -> int:
        """How many expired leases were released."""
        return len(self.requeued) + len(self.failed) + len(self.cancelled)


@dataclass(frozen=True)
class QueueStats:
    """Counts for one queue at the ``now`` given to :meth:`Storage.stats`.

    :param counts: jobs per status (every status present, 0 when none).
    :param scheduled: pending jobs whose ``run_at`` is still in the future.
    :param oldest_runnable_age: seconds since the oldest runnable (pending and
        due) job's ``run_at``; 0.0 when none is runnable.
    :param waiting: pending jobs waiting for their dependencies (counted in
        ``counts[PENDING]``, not in ``scheduled``).
    """

    counts: dict[JobStatus, int]
    scheduled: int
    oldest_runnable_age: float
    waiting: int = 0


@dataclass(frozen=True)
class Stats:
    """A snapshot from :meth:`Storage.stats`.

    :param queues: per queue name; a queue appears once it holds a job.
    :param completed_last_minute: jobs that completed in ``(now - 60, now]``.
    :param failed_last_minute: jobs that ended failed in ``(now - 60, now]``.
    :param paused: names of paused queues.
    """

    queues: dict[str, QueueStats] = field(default_factory=dict)
    completed_last_minute: int = 0
    failed_last_minute: int = 0
    paused: frozenset[str] = frozenset()


class TaskLimit(NamedTuple):
    """Limits on a task's jobs across every worker of every process, for
    :meth:`Storage.claim`.

    :param concurrency: at most this many of its jobs processing at once (>= 1),
        or None.
    :param rate: at most this many of its jobs started in any window of ``per``
        seconds (>= 1), or None.
    :param per: the rate's window in seconds (> 0).
    :param rate_key: tasks with the same key share one rate window (e.g. every
        task calling one API); default: the task name.
    :param per_key: the limits hold for each job ``limit_key`` on its own: at
        most ``concurrency`` processing jobs of the task per key, ``rate`` starts
        per (rate key, limit key) window; jobs without a key share one group.
        Default False: for the task as a whole.
    """

    concurrency: int | None = None
    rate: int | None = None
    per: float = 1.0
    rate_key: str | None = None
    per_key: bool = False


@dataclass(frozen=True)
class ScheduleState:
    """A recurring schedule as stored, shared by every process.

    :param name: the schedule's unique name.
    :param spec: JSON text describing it (task, cron or interval, time zone),
        written by the code that declared it, for display.
    :param next_fire_at: the next fire time not yet fired (epoch seconds).
    :param last_fire_at: the last fire time that enqueued jobs, or None.
    :param last_job_id: the job enqueued by the last fire, or None.
    :param paused: paused schedules do not fire.
    :param updated_at: when the row last changed.
    """

    name: str
    spec: str
    next_fire_at: float
    last_fire_at: float | None
    last_job_id: int | None
    paused: bool
    updated_at: float
