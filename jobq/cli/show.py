"""``jobq show ID``: one job, with each attempt that did not complete (its
error and traceback) and its timeline. Also behind ``flask jobq show``.

Rule: imports the queue, the storage's history records and the output helpers;
never imports Flask.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from ..errors import CommandError, JobNotFound
from ..job import Job
from ..queue import DurableQueue
from ..storage.history import AttemptRecord, TimelineEvent
from .output import dump_json, format_time, job_record, terminal_safe


def add_show_parser(verbs: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add the ``show`` verb to the subparsers ``verbs`` (``parents``: the common
    options and ``--json``)."""
    show = verbs.add_parser(
        "show",
        parents=list(parents),
        help="show one job, its failed attempts with their errors, and its timeline",
        description="Show one job: its state, each attempt that did not complete (how it "
        "ended, its worker, its error and traceback) and its timeline, times in UTC.",
    )
    show.add_argument("job_id", type=int, metavar="ID", help="the job's id")


def show_job(queue: DurableQueue, job_id: int, *, as_json: bool = False) -> str:
    """The text of ``show ID``: the job, its attempts that did not complete and its
    timeline. Raises :class:`CommandError` for an unknown id."""
    try:
        job = queue.get(job_id)
        attempts = queue.attempts(job_id)
        events = queue.timeline(job_id)
    except JobNotFound as exc:
        raise CommandError(str(exc)) from None
    depends_on, dependents = queue.dependencies_of(job_id), queue.dependents_of(job_id)
    if as_json:
        return dump_json(
            {
                "job": job_record(job),
                "depends_on": depends_on,
                "dependents": dependents,
                "attempts": [attempt.as_dict() for attempt in attempts],
                "timeline": [asdict(event) for event in events],
            }
        )
    lines = [*_job_lines(job), *_dependency_lines(job, depends_on, dependents)]
    return "\n".join([*lines, *_attempt_lines(attempts), *_timeline_lines(events)])


def _dependency_lines(job: Job, depends_on: Sequence[int], dependents: Sequence[int]) -> list[str]:
    lines = []
    if job.waiting:
        many = "" if job.waiting_for == 1 else "s"
        lines.append(f"  waiting    for {job.waiting_for} job{many} to complete")
    if depends_on:
        policy = f" (if one fails: {job.on_dependency_failure})"
        lines.append(f"  after      {', '.join(map(str, depends_on))}{policy}")
    if job.result_from is not None:
        lines.append(f"  gets the result of job {job.result_from} first")
    if dependents:
        lines.append(f"  before     {', '.join(map(str, dependents))}")
    return lines


def _job_lines(job: Job) -> list[str]:
    lines = [
        f"job {job.id}: {terminal_safe(job.name)}, queue {terminal_safe(job.queue)}",
        f"  status     {job.status.value}, attempt {job.attempts} of {job.max_attempts}",
        f"  created    {format_time(job.created_at)}",
        f"  started    {format_time(job.started_at)}",
        f"  finished   {format_time(job.finished_at)}",
    ]
    if job.lease_owner is not None:
        lines.append(f"  worker     {terminal_safe(job.lease_owner)}")
    if job.lease_expires_at is not None:
        lines.append(f"  lease til  {format_time(job.lease_expires_at)}")
    if job.expires_at is not None:
        lines.append(f"  expires    {format_time(job.expires_at)}")
    if job.limit_key is not None:
        lines.append(f"  limit key  {terminal_safe(job.limit_key)}")
    return lines


def _attempt_lines(attempts: Sequence[AttemptRecord]) -> list[str]:
    if not attempts:
        return ["attempts that did not complete: none"]
    lines = ["attempts that did not complete:"]
    for record in attempts:
        lines.append(
            f"  attempt {record.attempt}  {record.outcome}  {format_time(record.started_at)} "
            f"-> {format_time(record.ended_at)}  {terminal_safe(record.lease_owner or '-')}"
        )
        error = record.error
        if error is not None:
            lines.append(f"    {terminal_safe(error.type)}: {terminal_safe(error.message)}")
            if error.traceback:
                traceback = terminal_safe(error.traceback.rstrip(), keep_lines=True)
                lines += [f"      {line}" for line in traceback.splitlines()]
    return lines


def _timeline_lines(events: Sequence[TimelineEvent]) -> list[str]:
    lines = ["timeline (UTC):"]
    for event in events:
        attempt = "" if event.attempt is None else f" (attempt {event.attempt})"
        detail = f"  {terminal_safe(event.detail)}" if event.detail else ""
        lines.append(f"  {format_time(event.at)}  {event.kind}{attempt}{detail}")
    return lines
