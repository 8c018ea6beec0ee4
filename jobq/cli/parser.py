"""The ``jobq`` console script: its argparse front end and :func:`main`.

Parses the command line, opens the database given by ``--db`` (or
``$JOBQ_DATABASE``), imports the ``--import`` modules so their tasks register,
and hands the queue to a command (:mod:`jobq.cli.commands`) or the worker
(:mod:`jobq.cli.run`); prints the answer through :func:`~jobq.cli.output.terminal_safe`.

Rule: the only module of :mod:`jobq.cli` that reads ``sys.argv``, the
environment or imports user modules; never imports Flask.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from .. import defaults
from ..default_queue import configure, default_queue
from ..errors import CommandError, JobqError
from ..queue import DurableQueue
from .commands import (
    LIST_LIMIT,
    cancel_job,
    move_jobs,
    pause_schedule,
    purge_jobs,
    resume_schedule,
    retry_job,
    show_jobs,
    show_schedules,
    show_stats,
    split_names,
    trigger_schedule,
)
from .output import configure_logging, terminal_safe
from .run import DEFAULT_GRACE, run_worker

DATABASE_ENV = "JOBQ_DATABASE"
"""Environment variable read for the database path when ``--db`` is not given."""


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
        "--db",
        metavar="PATH",
        help=f"SQLite database file, sqlite:///path or postgresql:// URL "
        f"(default: ${DATABASE_ENV})",
    )
    common.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module first, so its tasks register on the default queue "
        "(repeatable; the current directory is on the import path)",
    )
    as_json = _Parser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON")

    parser = _Parser(
        prog="jobq", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    verbs = parser.add_subparsers(
        dest="verb", metavar="COMMAND", required=True, parser_class=_Parser
    )

    worker = verbs.add_parser(
        "worker",
        parents=[common],
        help="run workers in the foreground until SIGTERM/SIGINT",
        description="Run a worker pool in the foreground, logging to stderr. On SIGTERM or "
        "SIGINT it stops claiming jobs, gives running ones --grace seconds to finish, hands "
        "back claimed jobs that had not started, and exits 0 (1 if jobs were still running). "
        "Creates the database if it does not exist.",
    )
    worker.add_argument(
        "--concurrency",
        "-c",
        type=int,
        default=defaults.CONCURRENCY,
        metavar="N",
        help=f"worker threads, >= 1 (default {defaults.CONCURRENCY})",
    )
    worker.add_argument(
        "--queues",
        "-q",
        action="append",
        metavar="NAMES",
        help="comma-separated queues to take jobs from (repeatable; default: "
        "the queues of the registered tasks)",
    )
    worker.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE,
        metavar="SECONDS",
        help=f"seconds running jobs get to finish on stop (default {DEFAULT_GRACE:g})",
    )
    worker.add_argument(
        "--log-level",
        default="INFO",
        metavar="LEVEL",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="DEBUG, INFO (default), WARNING or ERROR",
    )

    verbs.add_parser("stats", parents=[common, as_json], help="job counts per queue and status")

    listing = verbs.add_parser("list", parents=[common, as_json], help="list jobs by id")
    listing.add_argument("--status", help="pending, processing, completed, failed or cancelled")
    listing.add_argument("--name", help="only jobs of this task")
    listing.add_argument(
        "--queue", dest="queue_name", metavar="QUEUE", help="only jobs of this queue"
    )
    listing.add_argument(
        "--limit", type=int, default=LIST_LIMIT, help=f"at most this many (default {LIST_LIMIT})"
    )
    listing.add_argument(
        "--after", type=int, metavar="ID", help="jobs with an id above this one (the next page)"
    )

    cancel = verbs.add_parser("cancel", parents=[common, as_json], help="cancel a job")
    cancel.add_argument("job_id", type=int, metavar="ID")
    retry = verbs.add_parser(
        "retry", parents=[common, as_json], help="run a failed or cancelled job again"
    )
    retry.add_argument("job_id", type=int, metavar="ID")
    retry.add_argument("--delay", default="0", help="wait this long first (e.g. 30, 5m)")

    purge = verbs.add_parser(
        "purge", parents=[common, as_json], help="delete finished jobs older than a given age"
    )
    purge.add_argument(
        "--older-than",
        required=True,
        metavar="AGE",
        help="seconds, or a number with a unit s, m, h, d, w (e.g. 7d, 12h)",
    )
    purge.add_argument(
        "--status",
        action="append",
        dest="statuses",
        metavar="STATUS",
        help="completed, failed or cancelled; repeatable or comma-separated (default: all three)",
    )

    verbs.add_parser(
        "schedules",
        parents=[common, as_json],
        help="list recurring schedules",
        description="List the recurring schedules stored in the database, whichever process "
        "declared them: name, task, cron expression or interval, next and last fire time "
        "(UTC), the last job and whether it is paused. A schedule is stored once a process "
        "that declares it fires schedules (a worker does on start). Steer one with "
        "'jobq pause-schedule NAME', 'jobq resume-schedule NAME' and "
        "'jobq trigger-schedule NAME'.",
    )
    for verb, summary, description in (
        (
            "pause-schedule",
            "stop firing a schedule",
            "Stop firing a schedule, in every process, until it is resumed.",
        ),
        (
            "resume-schedule",
            "fire a paused schedule again",
            "Fire a paused schedule again, from its next fire time after now (fires missed "
            "while it was paused are skipped).",
        ),
        (
            "trigger-schedule",
            "enqueue a schedule's job now",
            "Enqueue a schedule's job now, paused or not, with the queue and options stored "
            "with the schedule; its fire times stay as they are.",
        ),
    ):
        steer = verbs.add_parser(
            verb, parents=[common, as_json], help=summary, description=description
        )
        steer.add_argument("schedule", metavar="NAME", help="the schedule's name")

    move = verbs.add_parser(
        "move-jobs",
        parents=[as_json],
        help="move waiting jobs to another database",
        description="Copy every pending job (due or scheduled) from one database to another, "
        "e.g. from a SQLite file to PostgreSQL, and cancel it in the first, in batches: "
        "running it again never copies a job twice. Stop the source's workers first; jobs "
        "they still hold are left there and counted.",
    )
    move.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="DATABASE",
        help="where the jobs are now (a SQLite file or a URL)",
    )
    move.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="DATABASE",
        help="where they go (e.g. postgresql://user@host/db)",
    )
    return parser


def _database(arg: str | None) -> str:
    database = arg or os.environ.get(DATABASE_ENV)
    if not database:
        raise CommandError(f"no database given: pass --db PATH or set {DATABASE_ENV}")
    return database


def _open_queue(database: str, *, create: bool) -> DurableQueue:
    path = database[len("sqlite:///") :] if database.startswith("sqlite:///") else database
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


# What each verb but worker and move-jobs prints, from the queue and the parsed options.
_VERBS: dict[str, Callable[[DurableQueue, argparse.Namespace], str]] = {
    "stats": lambda queue, args: show_stats(queue, as_json=args.json),
    "list": lambda queue, args: show_jobs(
        queue,
        status=args.status,
        name=args.name,
        queue_name=args.queue_name,
        limit=args.limit,
        after=args.after,
        as_json=args.json,
    ),
    "cancel": lambda queue, args: cancel_job(queue, args.job_id, as_json=args.json),
    "retry": lambda queue, args: retry_job(queue, args.job_id, delay=args.delay, as_json=args.json),
    "purge": lambda queue, args: purge_jobs(
        queue, older_than=args.older_than, statuses=args.statuses, as_json=args.json
    ),
    "schedules": lambda queue, args: show_schedules(queue, as_json=args.json),
    "pause-schedule": lambda queue, args: pause_schedule(queue, args.schedule, as_json=args.json),
    "resume-schedule": lambda queue, args: resume_schedule(queue, args.schedule, as_json=args.json),
    "trigger-schedule": lambda queue, args: trigger_schedule(
        queue, args.schedule, as_json=args.json
    ),
}


def _move_jobs(args: argparse.Namespace) -> int:
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


def _worker(queue: DurableQueue, args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    if not queue.tasks:
        raise CommandError("no task is registered: pass --import with the modules that define them")
    return run_worker(
        queue, concurrency=args.concurrency, queues=split_names(args.queues), grace=args.grace
    )


def _run(args: argparse.Namespace) -> int:
    verb: str = args.verb
    if verb == "move-jobs":
        return _move_jobs(args)
    queue = _open_queue(_database(args.db), create=verb == "worker")
    try:
        _import_tasks(queue, args.imports)
        if verb == "worker":
            return _worker(queue, args)
        text = _VERBS[verb](queue, args)
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
