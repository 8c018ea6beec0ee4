"""What the dashboard's pages show, read from the queue in one place.

Each page's view calls one function here and hands its result to a template,
so new data (a count, a timeline, the threads of a pool) is one function away
and the views hold no queries. Every read is cheap at any size: the overview
reads the counters behind ``queue.stats()``, the jobs page one indexed page of
``queue.list()``; nothing counts the jobs table.

Rule: reads the ``jobq`` core's queue and values; never Flask.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jobq
from jobq.job import Job, JobStatus
from jobq.schedules import ScheduleInfo
from jobq.storage.bulk import CANCELLABLE, DELETABLE, RETRYABLE, BulkResult
from jobq.storage.history import AttemptRecord, TimelineEvent
from jobq.storage.job_logs import JobLogLine
from jobq.storage.workers import WorkerInfo

from .filters import STATUSES, JobQuery

RUNNING_SHOWN = 500
"""Most processing jobs the workers page reads to show what each pool runs."""


@dataclass(frozen=True)
class QueueRow:
    """One queue of the overview: counts by status, paused, oldest runnable age (s)."""

    name: str
    counts: Mapping[str, int]
    scheduled: int
    oldest_runnable_age: float
    paused: bool


@dataclass(frozen=True)
class Overview:
    """The overview page: one row per queue, the totals, and throughput buckets
    (``(start, completed, failed)``) per minute over the last hour and per hour
    over the last day; empty series when the storage keeps none."""

    queues: list[QueueRow]
    totals: Mapping[str, int]
    completed_last_minute: int
    failed_last_minute: int
    per_minute: list[tuple[float, int, int]] = field(default_factory=list)
    per_hour: list[tuple[float, int, int]] = field(default_factory=list)


def overview(
    queue: jobq.DurableQueue, *, with_task_queues: bool = False, charts: bool = True
) -> Overview:
    """Counts per queue (the stats counters) and throughput charts.

    :param with_task_queues: also list the queues of registered tasks that hold no
        job yet (so they can be paused before their first job).
    :param charts: read the throughput series too.
    """
    stats = queue.stats()
    totals = dict.fromkeys(STATUSES, 0)
    rows = []
    names = set(stats.queues) | set(stats.paused)
    if with_task_queues:
        names.update(task.queue for task in queue.tasks.values())
    for name in sorted(names):
        queue_stats = stats.queues.get(name)
        counts = {s.value: queue_stats.counts.get(s, 0) if queue_stats else 0 for s in JobStatus}
        for status, count in counts.items():
            totals[status] += count
        rows.append(
            QueueRow(
                name=name,
                counts=counts,
                scheduled=queue_stats.scheduled if queue_stats else 0,
                oldest_runnable_age=queue_stats.oldest_runnable_age if queue_stats else 0.0,
                paused=name in stats.paused,
            )
        )
    return Overview(
        queues=rows,
        totals=totals,
        completed_last_minute=stats.completed_last_minute,
        failed_last_minute=stats.failed_last_minute,
        per_minute=throughput(queue, last=3600.0, bucket=60.0) if charts else [],
        per_hour=throughput(queue, last=86400.0, bucket=3600.0) if charts else [],
    )


def throughput(
    queue: jobq.DurableQueue, *, last: float, bucket: float
) -> list[tuple[float, int, int]]:
    """Jobs that ended completed and failed per ``bucket`` seconds over the ``last``
    seconds, as ``(bucket start, completed, failed)``, from the kept per-minute
    counters (:meth:`jobq.DurableQueue.throughput`)."""
    return [(p.start, p.completed, p.failed) for p in queue.throughput(last=last, bucket=bucket)]


@dataclass(frozen=True)
class JobPage:
    """One page of jobs, with the cursors of its neighbours (None at either end)."""

    jobs: list[Job]
    next_after: int | None
    previous_before: int | None


def jobs_page(queue: jobq.DurableQueue, where: JobQuery) -> JobPage:
    """One page of jobs matching ``where``, in its order, and its neighbours: one
    query walking an index in id order, stopping after the page (never a count).

    ``after`` moves on in the page's order, ``before`` back: the previous page is
    read in the opposite order from its first job and reversed.
    """
    backwards = where.before is not None
    jobs = queue.find(
        **where.filters(),
        after=where.before if backwards else where.after,
        limit=where.limit + 1,
        newest_first=where.newest_first != backwards,
    )
    more = len(jobs) > where.limit
    page = jobs[: where.limit]
    if backwards:
        page.reverse()
        next_after = page[-1].id if page else None
        previous_before = page[0].id if more and page else None
    else:
        next_after = page[-1].id if more else None
        previous_before = page[0].id if where.after is not None and page else None
    return JobPage(page, next_after, previous_before)


@dataclass(frozen=True)
class LeaseOwner:
    """A lease owner string ``host:pid:name`` taken apart (``pid`` None if not a number)."""

    text: str
    host: str
    pid: int | None
    name: str


def lease_owner(owner: str | None) -> LeaseOwner | None:
    """``owner`` (a job's ``lease_owner``) as host, pid and pool name."""
    if not owner:
        return None
    host, _, rest = owner.partition(":")
    pid, _, name = rest.partition(":")
    return LeaseOwner(owner, host, int(pid) if pid.isdigit() else None, name)


@dataclass(frozen=True)
class JobDetail:
    """The job page: the job, its decoded data, log lines and where it runs."""

    job: Job
    payload: str | None
    result: str | None
    progress: Any
    logs: list[JobLogLine]
    owner: LeaseOwner | None
    thread: str | None
    attempts: list[AttemptRecord] = field(default_factory=list)
    timeline: list[TimelineEvent] = field(default_factory=list)
    depends_on: list[int] = field(default_factory=list)
    dependents: list[int] = field(default_factory=list)


def pretty(text: str | None) -> str | None:
    """Stored JSON text indented for reading (the text itself when it is not JSON)."""
    if text is None:
        return None
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=True)
    except ValueError:
        return text


def job_detail(
    queue: jobq.DurableQueue, job_id: int, *, show_payload: bool, running: Sequence[Any] = ()
) -> JobDetail:
    """Everything the job page shows about ``job_id``; raises :class:`jobq.JobNotFound`.

    ``running`` are this process's busy threads (``pool.running()``), to name the
    thread that runs the job when it runs here; when another process runs it, its
    thread is the one its pool recorded in the registry at its last heartbeat.
    """
    job = queue.get(job_id)
    thread = next((str(r["thread"]) for r in running if int(r["id"]) == job.id), None)
    if thread is None and job.status is JobStatus.PROCESSING:  # another process runs it
        thread = next(
            (
                entry.thread
                for info in queue.workers()
                if info.owner == job.lease_owner
                for entry in info.threads
                if entry.job_id == job.id
            ),
            None,
        )
    progress: Any = None
    if job.progress is not None:
        try:
            progress = json.loads(job.progress)
        except ValueError:
            progress = job.progress
    return JobDetail(
        job=job,
        payload=pretty(job.payload) if show_payload else None,
        result=pretty(job.result),
        progress=progress,
        logs=queue.job_logs(job.id),
        owner=lease_owner(job.lease_owner),
        thread=thread,
        attempts=queue.attempts(job.id),
        timeline=queue.timeline(job.id),
        depends_on=queue.dependencies_of(job.id),
        dependents=queue.dependents_of(job.id),
    )


@dataclass(frozen=True)
class WorkerView:
    """A live pool and the jobs it runs now (``(job, thread name or None)``), with
    its stuck threads (``(thread name, stuck since)``)."""

    info: WorkerInfo
    running: list[tuple[Job, str | None]]
    stuck: list[tuple[str, float]]


def workers(
    queue: jobq.DurableQueue, *, local_owner: str | None = None, local: Sequence[Any] = ()
) -> list[WorkerView]:
    """Every live pool, each with its processing jobs (one indexed read of at most
    :data:`RUNNING_SHOWN`) and the threads that run them, as each pool recorded
    them in the registry at its last heartbeat; for this process's own pool
    (``local_owner``), as it runs now (``local``: its ``pool.running()``)."""
    processing = queue.list(status="processing", limit=RUNNING_SHOWN)
    by_owner: dict[str, list[Job]] = {}
    for job in processing:
        by_owner.setdefault(job.lease_owner or "", []).append(job)
    views = []
    for info in queue.workers():
        threads = {thread.job_id: thread.thread for thread in info.threads}
        stuck = [
            (thread.thread, thread.stuck_since)
            for thread in info.threads
            if thread.stuck_since is not None
        ]
        if info.owner == local_owner:
            threads = {int(entry["id"]): str(entry["thread"]) for entry in local}
            stuck = [
                (str(entry["thread"]), float(entry["stuck_since"]))
                for entry in local
                if entry.get("stuck_since") is not None
            ]
        running = [(job, threads.get(job.id)) for job in by_owner.get(info.owner, [])]
        views.append(WorkerView(info, running, stuck))
    return views


BULK_ACTIONS: Mapping[str, tuple[str, frozenset[JobStatus]]] = {
    "retry": ("retried", RETRYABLE),
    "cancel": ("cancelled", CANCELLABLE),
    "delete": ("deleted", DELETABLE),
}
"""Each bulk action: the past tense the pages use and the statuses it acts on."""


def bulk_count(queue: jobq.DurableQueue, where: JobQuery, action: str) -> int:
    """How many jobs ``action`` would touch: those matching ``where`` in a status the
    action acts on (a count of the matching rows, read once, on the confirmation)."""
    _, acted_on = BULK_ACTIONS[action]
    filters = where.filters()
    statuses = acted_on if where.status is None else acted_on & {JobStatus(where.status)}
    if not statuses:
        return 0
    filters["status"] = sorted(status.value for status in statuses)
    return queue.count(**filters)


def bulk_run(queue: jobq.DurableQueue, where: JobQuery, action: str) -> BulkResult:
    """Run ``action`` (``retry``, ``cancel`` or ``delete``) on every job matching
    ``where``; raises ValueError when ``where`` filters nothing."""
    run = {"retry": queue.retry_all, "cancel": queue.cancel_all, "delete": queue.delete_all}
    return run[action](**where.filters())


def schedules(queue: jobq.DurableQueue) -> list[ScheduleInfo]:
    """Every stored schedule, by name."""
    return sorted(queue.schedules(), key=lambda info: info.name)


def queue_names(queue: jobq.DurableQueue) -> list[str]:
    """Queues the pages offer: those holding jobs, the paused ones, and those of the
    registered tasks."""
    stats = queue.stats()
    names = set(stats.queues) | set(stats.paused)
    names.update(task.queue for task in queue.tasks.values())
    return sorted(names)
