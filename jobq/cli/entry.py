"""The ``jobq`` console script: :func:`main` runs the command :mod:`jobq.cli.parser`
parses.

Finds the queue (``--app MODULE[:NAME]``, or ``--db`` and ``$JOBQ_DATABASE``,
through :mod:`jobq.cli.locate`), imports the ``--import`` modules, and hands the
queue to a command (:mod:`jobq.cli.commands`) or the worker (:mod:`jobq.cli.run`);
prints the answer through :func:`~jobq.cli.output.terminal_safe`.

Rule: the only module of :mod:`jobq.cli` that reads ``sys.argv`` or the
environment; never imports Flask.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

from ..errors import AppImportError, CommandError, JobqError
from ..queue import DurableQueue
from .batches import cancel_batch, show_batch, show_batches
from .bulk import run_bulk, wants_bulk
from .commands import (
    cancel_job,
    move_jobs,
    pause_schedule,
    purge_jobs,
    resume_schedule,
    retry_job,
    show_job_logs,
    show_jobs,
    show_schedules,
    show_stats,
    show_workers,
    split_names,
    trigger_schedule,
)
from .enqueue import enqueue_by_name
from .locate import (
    DATABASE_ENV,
    default_queue_set,
    explain_no_tasks,
    import_tasks,
    queue_from_app,
    refuse_missing_file,
    same_database,
)
from .output import configure_logging, terminal_safe
from .parser import build_parser
from .run import run_worker
from .show import show_job

__all__ = ["main"]


def _opened_queue(args: argparse.Namespace) -> tuple[DurableQueue, str]:
    """The queue ``--app`` or ``--db`` names, and which of the two it came from."""
    if args.app is not None and args.db is not None:
        raise CommandError(
            "give --app or --db, not both: --app opens the queue your code creates, "
            "--db a database without your code"
        )
    if args.app is not None:
        return queue_from_app(args.app), f"--app {args.app}"
    database = args.db or os.environ.get(DATABASE_ENV)
    if not database:
        raise CommandError(
            "no queue given: pass --app MODULE:QUEUE (the module that creates your "
            f"DurableQueue) or --db DATABASE, or set {DATABASE_ENV}"
        )
    refuse_missing_file(database, "--db" if args.db else f"${DATABASE_ENV}")
    return DurableQueue(database), "--db"


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
    "logs": lambda queue, args: show_job_logs(queue, args.job_id, as_json=args.json),
    "show": lambda queue, args: show_job(queue, args.job_id, as_json=args.json),
    "batch": lambda queue, args: show_batch(queue, args.batch_id, as_json=args.json),
    "batches": lambda queue, args: show_batches(
        queue, limit=args.limit, before=args.before, as_json=args.json
    ),
    "cancel-batch": lambda queue, args: cancel_batch(queue, args.batch_id, as_json=args.json),
    "enqueue": enqueue_by_name,
    "cancel": lambda queue, args: cancel_job(queue, args.job_id, as_json=args.json),
    "retry": lambda queue, args: retry_job(queue, args.job_id, delay=args.delay, as_json=args.json),
    "purge": lambda queue, args: purge_jobs(
        queue, older_than=args.older_than, statuses=args.statuses, as_json=args.json
    ),
    "workers": lambda queue, args: show_workers(queue, as_json=args.json),
    "schedules": lambda queue, args: show_schedules(queue, as_json=args.json),
    "pause-schedule": lambda queue, args: pause_schedule(queue, args.schedule, as_json=args.json),
    "resume-schedule": lambda queue, args: resume_schedule(queue, args.schedule, as_json=args.json),
    "trigger-schedule": lambda queue, args: trigger_schedule(
        queue, args.schedule, as_json=args.json
    ),
}


def _move_jobs(args: argparse.Namespace) -> int:
    refuse_missing_file(args.source, "--from")
    refuse_missing_file(args.target, "--to")
    if same_database(args.source, args.target):
        raise CommandError(
            f"--from and --to name the same database ({args.source}): give the database "
            "the jobs should move to as --to"
        )
    source = DurableQueue(args.source)
    try:
        target = DurableQueue(args.target)
        try:
            print(move_jobs(source, target, as_json=args.json))
        finally:
            target.close()
    finally:
        source.close()
    return 0


def _worker(
    queue: DurableQueue, source: str, modules: list[ModuleType], args: argparse.Namespace
) -> int:
    configure_logging(args.log_level)
    if not queue.tasks:
        raise CommandError(explain_no_tasks(source, modules))
    return run_worker(
        queue,
        concurrency=args.concurrency,
        queues=split_names(args.queues),
        grace=args.grace,
        health_port=args.health_port,
        health_host=args.health_host,
        metrics=args.metrics,
    )


@contextmanager
def _closing(queue: DurableQueue) -> Iterator[DurableQueue]:
    try:
        yield queue
    finally:
        queue.close()


def _run(args: argparse.Namespace) -> int:
    verb: str = args.verb
    if verb == "move-jobs":
        return _move_jobs(args)
    opened, source = _opened_queue(args)
    with _closing(opened) as queue, default_queue_set(queue):
        modules = import_tasks(queue, args.imports)
        if verb == "worker":
            if args.app is not None:
                modules.insert(0, sys.modules[args.app.partition(":")[0].strip()])
            return _worker(queue, source, modules, args)
        text = run_bulk(queue, args) if wants_bulk(args) else _VERBS[verb](queue, args)
    print(terminal_safe(text, keep_lines=True))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jobq`` command with ``argv`` (default ``sys.argv[1:]``); return the exit
    code (see :data:`EXIT_CODES`)."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except AppImportError as exc:
        sys.stderr.write(exc.details)
        print(f"jobq: error: {terminal_safe(str(exc))}", file=sys.stderr)
        return 2
    except (JobqError, ValueError) as exc:
        # JobqError covers CommandError, JobNotFound and StorageError (a file that is not
        # a database, a folder that cannot be written): all answered on one line.
        print(f"jobq: error: {terminal_safe(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of the output left (`jobq list | head`): stop quietly, and keep
        # the interpreter from failing again as it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
