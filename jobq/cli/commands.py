"""What each command does, on a queue it is given: the text to print, or
:class:`~jobq.errors.CommandError`.

``jobq`` (:mod:`jobq.cli.parser`) and ``flask jobq`` (:mod:`flask_jobq.cli`)
both call these, so a verb reads its options and answers the same way under
either; they differ only in where the queue comes from. The helpers that read
an option's text (:func:`parse_duration`, :func:`parse_status`,
:func:`parse_job_id`, :func:`split_names`) live here too.

Rule: uses the queue's public methods and :mod:`jobq.cli.output`; never a
worker pool, argparse, signals or Flask.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from ..errors import CommandError, JobNotFound, ScheduleNotFound
from ..job import Job, JobStatus
from ..queue import DurableQueue
from ..schedules import ScheduleInfo
from ..storage.job_logs import logs_as_dict
from ..storage.transfer import move_pending_jobs
from .output import (
    describe_schedule,
    dump_json,
    format_job_logs,
    format_jobs,
    format_schedules,
    format_stats,
    format_time,
    format_workers,
    job_record,
    quote_name,
    stats_record,
    terminal_safe,
)

LIST_LIMIT = 50
"""Jobs ``list`` shows when ``--limit`` is not given."""

MAX_LIST_LIMIT = 10_000
"""Largest ``--limit`` of ``list``."""

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_FINAL = ("completed", "failed", "cancelled")

# -- reading an option's text --------------------------------------------------------


def parse_duration(text: str) -> float:
    """Seconds from ``"90"``, ``"90s"``, ``"15m"``, ``"12h"``, ``"7d"`` or ``"2w"``.

    Raises :class:`CommandError` for anything else or a negative value.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)\s*", text.lower())
    if match is None:
        raise CommandError(
            f"invalid duration {text!r}: give seconds or a number with a unit s, m, h, d or w "
            "(e.g. 3600, 12h, 7d)"
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_status(text: str) -> JobStatus:
    """The :class:`JobStatus` named ``text``. Raises :class:`CommandError`."""
    try:
        return JobStatus(text.strip().lower())
    except ValueError:
        known = ", ".join(status.value for status in JobStatus)
        raise CommandError(f"unknown status {text!r} (choose from {known})") from None


def parse_job_id(text: str) -> int:
    """A job id (a positive integer) from ``text``. Raises :class:`CommandError`."""
    try:
        job_id = int(text)
    except ValueError:
        job_id = 0
    if job_id < 1:
        raise CommandError(f"invalid job id {text!r}: give a positive integer")
    return job_id


def split_names(values: Sequence[str] | None) -> list[str] | None:
    """Names given as repeated and/or comma-separated options; None when none."""
    if not values:
        return None
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return names or None


# -- the commands --------------------------------------------------------------------


def show_stats(queue: DurableQueue, *, as_json: bool = False) -> str:
    """The text of ``stats``: a table, or JSON (:func:`stats_record`) with ``as_json``."""
    stats = queue.stats()
    return dump_json(stats_record(stats)) if as_json else format_stats(stats)


def show_jobs(
    queue: DurableQueue,
    *,
    status: str | None = None,
    name: str | None = None,
    queue_name: str | None = None,
    limit: int = LIST_LIMIT,
    after: int | None = None,
    as_json: bool = False,
) -> str:
    """The text of ``list``: jobs matching the filters, by id, at most ``limit``
    (1 to 10,000) after the id ``after``. JSON is ``{"jobs": [...], "next_after": id}``,
    ``next_after`` being None on the last page. Raises :class:`CommandError`."""
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise CommandError(f"--limit must be between 1 and {MAX_LIST_LIMIT}, got {limit}")
    jobs = queue.list(
        status=None if status is None else parse_status(status),
        name=name,
        queue=queue_name,
        limit=limit,
        after=after,
    )
    if as_json:
        next_after = jobs[-1].id if len(jobs) == limit else None
        return dump_json({"jobs": [job_record(job) for job in jobs], "next_after": next_after})
    text = format_jobs(jobs)
    if len(jobs) == limit:
        text += f"\nmore may follow: --after {jobs[-1].id}"
    return text


def show_job_logs(queue: DurableQueue, job_id: int, *, as_json: bool = False) -> str:
    """The text of ``logs ID``: the lines the job's tasks kept with
    ``jobq.current_job().log()``. Raises :class:`CommandError` for an unknown id."""
    try:
        lines = queue.job_logs(job_id)
    except JobNotFound as exc:
        raise CommandError(str(exc)) from None
    if as_json:
        return dump_json(logs_as_dict(job_id, lines))
    return format_job_logs(job_id, lines)


def cancel_job(queue: DurableQueue, job_id: int, *, as_json: bool = False) -> str:
    """The text of ``cancel ID``: what became of the job. Raises :class:`CommandError`
    for an unknown id."""
    before = _get(queue, job_id)
    job = queue.cancel(job_id)
    if as_json:
        return dump_json(job_record(job))
    if job.status is JobStatus.CANCELLED and before.status is not JobStatus.CANCELLED:
        return f"job {job_id} cancelled"
    if job.status is JobStatus.PROCESSING:
        return f"job {job_id} is running: cancel requested, its worker will stop it"
    return f"job {job_id} is already {job.status.value}; nothing to cancel"


def retry_job(queue: DurableQueue, job_id: int, *, delay: str = "0", as_json: bool = False) -> str:
    """The text of ``retry ID``: a failed or cancelled job runs again after ``delay``
    (see :func:`parse_duration`). Raises :class:`CommandError` for an unknown id or
    a job in another status."""
    _get(queue, job_id)
    try:
        job = queue.retry(job_id, delay=parse_duration(delay))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if as_json:
        return dump_json(job_record(job))
    return f"job {job_id} will run again ({_job_label(job)})"


def purge_jobs(
    queue: DurableQueue,
    *,
    older_than: str,
    statuses: Sequence[str] | None = None,
    as_json: bool = False,
) -> str:
    """The text of ``purge``: delete jobs that finished more than ``older_than``
    ago (:func:`parse_duration`) with one of ``statuses`` (default the final ones).
    Raises :class:`CommandError` for a bad duration or a status that is not final."""
    seconds = parse_duration(older_than)
    chosen = [parse_status(s) for s in split_names(statuses) or _FINAL]
    for status in chosen:
        if not status.is_final:
            raise CommandError(
                f"cannot purge {status.value} jobs: only completed, failed or cancelled ones"
            )
    deleted = queue.purge(older_than=seconds, statuses=chosen)
    if as_json:
        return dump_json(
            {"deleted": deleted, "statuses": [s.value for s in chosen], "older_than": seconds}
        )
    return (
        f"deleted {deleted} job{'s' if deleted != 1 else ''} "
        f"({', '.join(s.value for s in chosen)}) older than {older_than}"
    )


def show_workers(queue: DurableQueue, *, as_json: bool = False) -> str:
    """The text of ``workers``: the live worker pools of every process and host as a
    table, or JSON ``{"workers": [...]}`` (:meth:`~jobq.WorkerInfo.as_dict`, epoch times)."""
    workers = queue.workers()
    if as_json:
        return dump_json({"workers": [info.as_dict() for info in workers]})
    return format_workers(workers, queue.clock.now())


def show_schedules(queue: DurableQueue, *, as_json: bool = False) -> str:
    """The text of ``schedules``: every stored schedule as a table, or JSON
    ``{"schedules": [...]}`` (:meth:`~jobq.schedules.ScheduleInfo.as_dict`, epoch times)."""
    schedules = queue.schedules()
    if as_json:
        return dump_json({"schedules": [info.as_dict() for info in schedules]})
    return format_schedules(schedules)


def pause_schedule(queue: DurableQueue, name: str, *, as_json: bool = False) -> str:
    """The text of ``pause-schedule NAME``: the schedule stops firing in every process.
    Raises :class:`CommandError` for an unknown schedule."""
    before = _schedule(queue, name)
    info = _known(queue.pause_schedule, name)
    if as_json:
        return dump_json(info.as_dict())
    if before.paused:
        return f"schedule {name!r} is already paused"
    return f"schedule {name!r} paused ({describe_schedule(info)})"


def resume_schedule(queue: DurableQueue, name: str, *, as_json: bool = False) -> str:
    """The text of ``resume-schedule NAME``: the schedule fires again from its next fire
    time after now (missed fires are skipped). Raises :class:`CommandError` for an
    unknown schedule."""
    before = _schedule(queue, name)
    info = _known(queue.resume_schedule, name)
    if as_json:
        return dump_json(info.as_dict())
    state = "resumed" if before.paused else "was not paused"
    return f"schedule {name!r} {state}; next fire {format_time(info.next_fire_at)} UTC"


def trigger_schedule(queue: DurableQueue, name: str, *, as_json: bool = False) -> str:
    """The text of ``trigger-schedule NAME``: the schedule's job is enqueued now, paused
    or not, with the queue and options stored with the schedule; its fire times stay
    as they are. Raises :class:`CommandError` for an unknown schedule."""
    _schedule(queue, name)
    job = _known(queue.trigger_schedule, name)
    if as_json:
        return dump_json(job_record(job))
    return f"schedule {name!r} triggered: job {job.id} ({_job_label(job)})"


def _schedule(queue: DurableQueue, name: str) -> ScheduleInfo:
    schedules = queue.schedules()
    for info in schedules:
        if info.name == name:
            return info
    known = ", ".join(repr(info.name) for info in schedules[:10])
    if len(schedules) > 10:
        known += ", ..."
    hint = (
        f"known: {known}"
        if known
        else (
            "none is stored yet: a schedule is stored when code declares it with "
            "queue.schedule or @queue.periodic; import that code, e.g. with --app"
        )
    )
    raise CommandError(f"no schedule named {quote_name(name)} ({hint})")


_R = TypeVar("_R")


def _known(action: Callable[[str], _R], name: str) -> _R:
    try:
        return action(name)
    except ScheduleNotFound:  # deleted since it was looked up
        raise CommandError(f"no schedule named {quote_name(name)}") from None


def _job_label(job: Job) -> str:
    return f"{terminal_safe(job.name)}, queue {terminal_safe(job.queue)}"


def _get(queue: DurableQueue, job_id: int) -> Job:
    try:
        return queue.get(job_id)
    except JobNotFound as exc:
        raise CommandError(str(exc)) from None


def move_jobs(source: DurableQueue, target: DurableQueue, *, as_json: bool = False) -> str:
    """Move the pending jobs of ``source`` into ``target``; the text to print."""
    try:
        report = move_pending_jobs(source.storage, target.storage)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if as_json:
        return dump_json({"moved": report.moved, "still_processing": report.processing})
    text = f"moved {report.moved} pending job(s)"
    if report.processing:
        text += (
            f"; {report.processing} job(s) are still processing in the source: stop its "
            "workers, let them finish, and run this again"
        )
    return text
