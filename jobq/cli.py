"""The ``jobq`` command line: run workers and look after the jobs of one database.

::

    jobq worker --db instance/jobs.db --import myapp.tasks --concurrency 4
    jobq stats --db instance/jobs.db --json
    jobq list --db instance/jobs.db --status failed --limit 20
    jobq retry 42 --db instance/jobs.db
    jobq schedules --db instance/jobs.db
    jobq pause-schedule nightly-report --db instance/jobs.db
    jobq move-jobs --from instance/jobs.db --to postgresql://app@db/app

Standard library only, and never Flask: ``flask_jobq.cli`` builds ``flask jobq``
on the helpers here (:func:`show_stats`, :func:`show_jobs`, :func:`cancel_job`,
:func:`retry_job`, :func:`purge_jobs`, :func:`show_schedules`, :func:`pause_schedule`,
:func:`resume_schedule`, :func:`trigger_schedule`, :func:`run_worker`), which take a
queue and return the text to print or raise :class:`CommandError`.

Exit codes: 0 success; 1 when a worker stopped with jobs still running after
its grace period; 2 for bad input (unknown id or status, missing database,
bad option, unknown schedule), reported on one line of stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TypeVar

from . import defaults, signals
from .cli_format import (
    CommandError as CommandError,
)
from .cli_format import (
    TerminalSafeFormatter,
    describe_schedule,
    dump_json,
    format_jobs,
    format_schedules,
    format_stats,
    format_time,
    job_record,
    parse_duration,
    parse_status,
    quote_name,
    shorten,
    split_names,
    stats_record,
    terminal_safe,
)
from .default_queue import configure, default_queue
from .errors import JobqError, ScheduleNotFound
from .job import Job, JobStatus
from .queue import DurableQueue, JobNotFound
from .schedules import ScheduleInfo
from .storage.transfer import move_pending_jobs

logger = logging.getLogger("jobq.cli")

DATABASE_ENV = "JOBQ_DATABASE"
"""Environment variable read for the database path when ``--db`` is not given."""

DEFAULT_GRACE = defaults.STOP_GRACE_SECONDS
"""Seconds running jobs get to finish when a worker is told to stop."""

_WAIT_STEP = 0.1  # seconds between looks at the signal flag in the worker's main thread
_FINAL = ("completed", "failed", "cancelled")


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
    limit: int = 50,
    after: int | None = None,
    as_json: bool = False,
) -> str:
    """The text of ``list``: jobs matching the filters, by id, at most ``limit``
    (1 to 10,000) after the id ``after``. JSON is ``{"jobs": [...], "next_after": id}``,
    ``next_after`` being None on the last page. Raises :class:`CommandError`."""
    if not 1 <= limit <= 10_000:
        raise CommandError(f"--limit must be between 1 and 10000, got {limit}")
    jobs = queue.list(status=None if status is None else parse_status(status), name=name,
                      queue=queue_name, limit=limit, after=after)  # fmt: skip
    if as_json:
        next_after = jobs[-1].id if len(jobs) == limit else None
        return dump_json({"jobs": [job_record(job) for job in jobs], "next_after": next_after})
    text = format_jobs(jobs)
    if len(jobs) == limit:
        text += f"\nmore may follow: --after {jobs[-1].id}"
    return text


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


def retry_job(
    queue: DurableQueue, job_id: int, *, delay: str = "0", as_json: bool = False
) -> str:
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
        return dump_json({"deleted": deleted, "statuses": [s.value for s in chosen],
                      "older_than": seconds})  # fmt: skip
    return (f"deleted {deleted} job{'s' if deleted != 1 else ''} "
            f"({', '.join(s.value for s in chosen)}) older than {older_than}")  # fmt: skip


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
    hint = f"known: {known}" if known else (
        "none is stored yet: a schedule is stored once a process that declares it fires "
        "schedules, e.g. when its workers start"
    )  # fmt: skip
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


# -- the worker ------------------------------------------------------------------------


def _log_job_events(queue: DurableQueue) -> list[Callable[..., None]]:
    """Connect INFO logging of the queue's job events; returns the receivers to disconnect."""

    def started(sender: object, *, job: Job, **_: Any) -> None:
        logger.info("job %d %s started (attempt %d/%d)", job.id, job.name, job.attempts,
                    job.max_attempts)  # fmt: skip

    def succeeded(sender: object, *, job: Job, **_: Any) -> None:
        logger.info("job %d %s completed", job.id, job.name)

    def retrying(sender: object, *, job: Job, error: Any = None, **_: Any) -> None:
        reason = f"{error.type}: {error.message}" if error is not None else "retry"
        logger.warning("job %d %s will retry: %s", job.id, job.name, shorten(reason, 200))

    def failed(sender: object, *, job: Job, error: Any = None, **_: Any) -> None:
        reason = f"{error.type}: {error.message}" if error is not None else "failed"
        logger.error("job %d %s failed: %s", job.id, job.name, shorten(reason, 200))

    def cancelled(sender: object, *, job: Job, **_: Any) -> None:
        logger.info("job %d %s cancelled", job.id, job.name)

    pairs = [(signals.job_started, started), (signals.job_succeeded, succeeded),
             (signals.job_retrying, retrying), (signals.job_failed, failed),
             (signals.job_cancelled, cancelled)]  # fmt: skip
    for signal_, receiver in pairs:
        signal_.connect(receiver, sender=queue, weak=False)
    return [receiver for _, receiver in pairs]


@contextmanager
def _stop_signals() -> Iterator[list[int]]:
    """Catch SIGTERM and SIGINT while inside; yields the list of signals received.

    The handler only appends to a list: setting a threading.Event from a signal
    handler can deadlock if the main thread holds that Event's lock at the time.
    """
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    wanted = [signal.SIGTERM, signal.SIGINT]
    previous = {signum: signal.signal(signum, on_signal) for signum in wanted}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_worker(
    queue: DurableQueue,
    *,
    concurrency: int = defaults.CONCURRENCY,
    queues: Collection[str] | None = None,
    grace: float = DEFAULT_GRACE,
) -> int:
    """Run a worker pool in the foreground until SIGTERM or SIGINT; return an exit code.

    On the signal the pool stops claiming, running jobs get ``grace`` seconds to
    finish and jobs claimed but not started are handed back (pending, attempt not
    counted). Returns 0 when every running job finished in time, 1 otherwise
    (their leases lapse and another worker runs them again) or when the pool
    ended without a signal. Must run in the
    main thread (signal handlers). Raises :class:`CommandError` for a bad option.
    """
    if concurrency < 1:
        raise CommandError(f"--concurrency must be at least 1, got {concurrency}")
    if not (math.isfinite(grace) and grace >= 0):
        raise CommandError(f"--grace must be a number of seconds >= 0, got {grace}")
    receivers = _log_job_events(queue)
    try:
        with _stop_signals() as received:
            pool = queue.start_workers(concurrency, queues=queues)
            logger.info(
                "worker pid %d started: %d threads on queues %s of %s; tasks: %s",
                os.getpid(), concurrency, ", ".join(pool.queues), _where(queue),
                ", ".join(sorted(queue.tasks)) or "none",
            )
            try:
                while not received and pool.is_alive:
                    time.sleep(_WAIT_STEP)
            finally:
                why = signal.Signals(received[0]).name if received else "the pool ended"
                logger.info("%s: stopping, running jobs have %g s to finish", why, grace)
                finished = pool.stop(grace)
    finally:
        for signal_, receiver in zip(
            (signals.job_started, signals.job_succeeded, signals.job_retrying,
             signals.job_failed, signals.job_cancelled), receivers, strict=True,
        ):  # fmt: skip
            signal_.disconnect(receiver, sender=queue)
    if not received:
        logger.error("the worker pool stopped on its own; see the errors above")
        return 1
    if not finished:
        logger.warning("jobs were still running after %g s; their leases will lapse", grace)
        return 1
    logger.info("worker stopped")
    return 0


def _where(queue: DurableQueue) -> str:
    return str(getattr(queue.storage, "path", queue.storage))


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr with times, at ``level``, unless the root logger is set up already.

    Lines go through :class:`TerminalSafeFormatter`: job data in them (names, error
    texts, a webhook receiver's answer) cannot send escape sequences to the terminal.
    An app that set up logging itself keeps its own handlers and formatters.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TerminalSafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])


# -- the plain command line -------------------------------------------------------------


_DESCRIPTION = """\
Run jobq workers and look after the jobs of one database (a SQLite file or a
postgresql:// URL), without Flask (with Flask, use 'flask jobq ...').

Every command but move-jobs takes --db PATH_OR_URL (or the JOBQ_DATABASE
environment variable). 'jobq move-jobs --from FILE --to URL' moves waiting jobs
from a SQLite file to PostgreSQL.

How workers find your tasks: the worker opens the database given by --db,
makes it the process's default queue (jobq.configure), then imports each
--import module. Those modules register their tasks on that queue:

    # myapp/tasks.py
    import jobq
    queue = jobq.default_queue()

    @queue.task("send_email")
    def send_email(to: str) -> None: ...

and your app configures the same database before importing them:
jobq.configure(jobq.DurableQueue("instance/jobs.db")). Then:

    jobq worker --db instance/jobs.db --import myapp.tasks

Recurring schedules: 'jobq schedules' lists those stored in the database;
'jobq pause-schedule NAME', 'resume-schedule NAME' and 'trigger-schedule NAME'
steer one.

Exit codes: 0 done; 1 a worker stopped with jobs still running; 2 bad input.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``jobq`` argument parser."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--db", metavar="PATH",
        help=f"SQLite database file, sqlite:///path or postgresql:// URL "
        f"(default: ${DATABASE_ENV})",
    )  # fmt: skip
    common.add_argument(
        "--import", dest="imports", action="append", default=[], metavar="MODULE",
        help="import this module first, so its tasks register on the default queue "
        "(repeatable; the current directory is on the import path)",
    )  # fmt: skip
    as_json = _Parser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON")

    parser = _Parser(prog="jobq", description=_DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True,
                                  parser_class=_Parser)  # fmt: skip

    worker = verbs.add_parser(
        "worker", parents=[common], help="run workers in the foreground until SIGTERM/SIGINT",
        description="Run a worker pool in the foreground, logging to stderr. On SIGTERM or "
        "SIGINT it stops claiming jobs, gives running ones --grace seconds to finish, hands "
        "back claimed jobs that had not started, and exits 0 (1 if jobs were still running). "
        "Creates the database if it does not exist.",
    )  # fmt: skip
    worker.add_argument("--concurrency", "-c", type=int, default=defaults.CONCURRENCY, metavar="N",
                        help="worker threads, >= 1 (default 4)")  # fmt: skip
    worker.add_argument("--queues", "-q", action="append", metavar="NAMES",
                        help="comma-separated queues to take jobs from (repeatable; default: "
                        "the queues of the registered tasks)")  # fmt: skip
    worker.add_argument("--grace", type=float, default=DEFAULT_GRACE, metavar="SECONDS",
                        help=f"seconds running jobs get to finish on stop (default "
                        f"{DEFAULT_GRACE:g})")  # fmt: skip
    worker.add_argument("--log-level", default="INFO", metavar="LEVEL",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="DEBUG, INFO (default), WARNING or ERROR")  # fmt: skip

    verbs.add_parser("stats", parents=[common, as_json],
                     help="job counts per queue and status")  # fmt: skip

    listing = verbs.add_parser("list", parents=[common, as_json], help="list jobs by id")
    listing.add_argument("--status", help="pending, processing, completed, failed or cancelled")
    listing.add_argument("--name", help="only jobs of this task")
    listing.add_argument("--queue", dest="queue_name", metavar="QUEUE",
                         help="only jobs of this queue")  # fmt: skip
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--after", type=int, metavar="ID",
                         help="jobs with an id above this one (the next page)")  # fmt: skip

    cancel = verbs.add_parser("cancel", parents=[common, as_json], help="cancel a job")
    cancel.add_argument("job_id", type=int, metavar="ID")
    retry = verbs.add_parser("retry", parents=[common, as_json],
                             help="run a failed or cancelled job again")  # fmt: skip
    retry.add_argument("job_id", type=int, metavar="ID")
    retry.add_argument("--delay", default="0", help="wait this long first (e.g. 30, 5m)")

    purge = verbs.add_parser("purge", parents=[common, as_json],
                             help="delete finished jobs older than a given age")  # fmt: skip
    purge.add_argument("--older-than", required=True, metavar="AGE",
                       help="seconds, or a number with a unit s, m, h, d, w (e.g. 7d, 12h)")
    purge.add_argument("--status", action="append", dest="statuses", metavar="STATUS",
                       help="completed, failed or cancelled; repeatable or comma-separated "
                       "(default: all three)")  # fmt: skip

    verbs.add_parser(
        "schedules", parents=[common, as_json],
        help="list recurring schedules",
        description="List the recurring schedules stored in the database, whichever process "
        "declared them: name, task, cron expression or interval, next and last fire time "
        "(UTC), the last job and whether it is paused. A schedule is stored once a process "
        "that declares it fires schedules (a worker does on start). Steer one with "
        "'jobq pause-schedule NAME', 'jobq resume-schedule NAME' and "
        "'jobq trigger-schedule NAME'.",
    )  # fmt: skip
    for verb, summary, description in (
        ("pause-schedule", "stop firing a schedule",
         "Stop firing a schedule, in every process, until it is resumed."),
        ("resume-schedule", "fire a paused schedule again",
         "Fire a paused schedule again, from its next fire time after now (fires missed "
         "while it was paused are skipped)."),
        ("trigger-schedule", "enqueue a schedule's job now",
         "Enqueue a schedule's job now, paused or not, with the queue and options stored "
         "with the schedule; its fire times stay as they are."),
    ):  # fmt: skip
        steer = verbs.add_parser(verb, parents=[common, as_json], help=summary,
                                 description=description)  # fmt: skip
        steer.add_argument("schedule", metavar="NAME", help="the schedule's name")

    move = verbs.add_parser(
        "move-jobs", parents=[as_json], help="move waiting jobs to another database",
        description="Copy every pending job (due or scheduled) from one database to another, "
        "e.g. from a SQLite file to PostgreSQL, and cancel it in the first, in batches: "
        "running it again never copies a job twice. Stop the source's workers first; jobs "
        "they still hold are left there and counted.",
    )  # fmt: skip
    move.add_argument("--from", dest="source", required=True, metavar="DATABASE",
                      help="where the jobs are now (a SQLite file or a URL)")  # fmt: skip
    move.add_argument("--to", dest="target", required=True, metavar="DATABASE",
                      help="where they go (e.g. postgresql://user@host/db)")  # fmt: skip
    return parser


def move_jobs(source: DurableQueue, target: DurableQueue, *, as_json: bool = False) -> str:
    """Move the pending jobs of ``source`` into ``target``; the text to print."""
    report = move_pending_jobs(source.storage, target.storage)
    if as_json:
        return dump_json({"moved": report.moved, "still_processing": report.processing})
    text = f"moved {report.moved} pending job(s)"
    if report.processing:
        text += (f"; {report.processing} job(s) are still processing in the source: stop its "
                 "workers, let them finish, and run this again")  # fmt: skip
    return text


_SCHEDULE_VERBS: dict[str, Callable[..., str]] = {
    "pause-schedule": pause_schedule,
    "resume-schedule": resume_schedule,
    "trigger-schedule": trigger_schedule,
}


def _database(arg: str | None) -> str:
    database = arg or os.environ.get(DATABASE_ENV)
    if not database:
        raise CommandError(f"no database given: pass --db PATH or set {DATABASE_ENV}")
    return database


def _open_queue(database: str, *, create: bool) -> DurableQueue:
    path = database[len("sqlite:///"):] if database.startswith("sqlite:///") else database
    if not create and "://" not in path and not Path(path).is_file():
        raise CommandError(f"database {path!r} does not exist")
    return DurableQueue(database)


def _import_tasks(queue: DurableQueue, modules: Sequence[str]) -> None:
    if not modules:
        return
    # A console script's sys.path starts with the script's folder, not the current one.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    configure(queue)
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
                raise CommandError(f"cannot import {module!r}: {exc}") from None
            raise
        if default_queue() is not queue:
            raise CommandError(
                f"module {module!r} replaced the default queue; register tasks on "
                "jobq.default_queue() instead of configuring another one"
            )


def _run(args: argparse.Namespace) -> int:
    verb: str = args.verb
    if verb == "move-jobs":
        source = _open_queue(args.source, create=False)
        try:
            target = _open_queue(args.target, create=True)
            try:
                print(move_jobs(source, target, as_json=args.json))
            finally:
                target.close()
        finally:
            source.close()
        return 0
    queue = _open_queue(_database(args.db), create=verb == "worker")
    try:
        _import_tasks(queue, args.imports)
        if verb == "worker":
            configure_logging(args.log_level)
            if not queue.tasks:
                raise CommandError(
                    "no task is registered: pass --import with the modules that define them"
                )
            return run_worker(queue, concurrency=args.concurrency,
                              queues=split_names(args.queues), grace=args.grace)  # fmt: skip
        if verb == "stats":
            text = show_stats(queue, as_json=args.json)
        elif verb == "list":
            text = show_jobs(queue, status=args.status, name=args.name,
                             queue_name=args.queue_name, limit=args.limit, after=args.after,
                             as_json=args.json)  # fmt: skip
        elif verb == "cancel":
            text = cancel_job(queue, args.job_id, as_json=args.json)
        elif verb == "retry":
            text = retry_job(queue, args.job_id, delay=args.delay, as_json=args.json)
        elif verb == "schedules":
            text = show_schedules(queue, as_json=args.json)
        elif verb in _SCHEDULE_VERBS:
            text = _SCHEDULE_VERBS[verb](queue, args.schedule, as_json=args.json)
        else:
            text = purge_jobs(queue, older_than=args.older_than, statuses=args.statuses,
                              as_json=args.json)  # fmt: skip
    finally:
        if args.imports:
            configure(None)
        queue.close()
    print(terminal_safe(text, keep_lines=True))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jobq`` command with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (JobqError, ValueError) as exc:
        # JobqError covers CommandError, JobNotFound and StorageError (a file that is not
        # a database, a folder that cannot be written): all answered on one line.
        print(f"jobq: error: {terminal_safe(str(exc))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
