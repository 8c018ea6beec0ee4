"""The ``jobq`` console script's argparse front end: :func:`build_parser` and the
exit codes; :mod:`jobq.cli.entry` runs what it parses.

Rule: never imports Flask.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from .. import defaults
from .batches import add_batch_parsers
from .bulk import add_bulk_verbs
from .commands import LIST_LIMIT
from .enqueue import add_enqueue_parser
from .health import DEFAULT_HEALTH_HOST
from .locate import DATABASE_ENV
from .run import DEFAULT_GRACE
from .show import add_show_parser

__all__ = ["DATABASE_ENV", "EXIT_CODES", "build_parser"]

EXIT_CODES = """\
Exit codes: 0 done; 1 a worker stopped with jobs still running after its grace
period (or its pool ended on its own); 2 bad input (unknown id, status or
schedule, bad option, missing database file, no queue found, a health port in
use), reported on one
line of stderr, or a module given to --app or --import that raised while it was
imported (its traceback is printed first); 141 the reader of the output went away
(jobq list | head), quietly."""

_DESCRIPTION = """\
Run jobq workers and look after the jobs of one queue (a SQLite file or a
PostgreSQL database), without Flask (with Flask, use 'flask jobq ...').

Every command but move-jobs opens the queue in one of two ways (exactly one):

  --app MODULE:NAME  import MODULE and use its DurableQueue NAME, with the tasks
                     and schedules your code registers on it ('--app MODULE'
                     finds the one DurableQueue the module defines). The current
                     directory is on the import path. The queue opens its
                     database as your code does.
  --db DATABASE      open a SQLite file, sqlite:///path, postgresql:// or
                     redis:// URL directly (default: $JOBQ_DATABASE). A SQLite
                     file must exist: no command creates one.

A worker runs the tasks registered on its queue, so give it the module that
creates your queue:

    # myapp/tasks.py
    import jobq

    queue = jobq.DurableQueue("instance/jobs.db")

    @queue.task()
    def send_email(to: str) -> None: ...

    jobq worker --app myapp.tasks:queue

--import MODULE (repeatable) imports more modules first, e.g. modules that
register tasks on jobq.default_queue(): the command's queue is the process's
default queue while they are imported.

Recurring schedules: 'jobq schedules' lists those stored in the database (a
schedule is stored when code declares it); 'jobq pause-schedule NAME',
'resume-schedule NAME' and 'trigger-schedule NAME' steer one.

"""
_DESCRIPTION += EXIT_CODES + "\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``jobq`` argument parser."""
    common = _Parser(add_help=False)
    where = common.add_argument_group("the queue (give --app or --db)")
    where.add_argument(
        "--app",
        metavar="MODULE[:NAME]",
        help="the DurableQueue your code creates, e.g. myapp.tasks:queue, with the tasks "
        "and schedules registered on it; MODULE alone finds the one DurableQueue it "
        "defines. MODULE is imported from the current directory or the Python path",
    )
    where.add_argument(
        "--db",
        metavar="DATABASE",
        help=f"a SQLite file, sqlite:///path, postgresql:// or redis:// URL, opened without your "
        f"code (default: ${DATABASE_ENV}); a SQLite file must exist",
    )
    common.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module too (after the --app module), e.g. one that registers "
        "tasks on jobq.default_queue(): the command's queue is the default queue while it "
        "is imported. Repeatable; the current directory is on the import path",
    )
    as_json = _Parser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON")

    parser = _Parser(
        prog="jobq", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    verbs = parser.add_subparsers(
        dest="verb",
        metavar="COMMAND",
        required=True,
        parser_class=_Parser,
        title="commands",
        help="run 'jobq COMMAND --help' for its options",
    )

    worker = verbs.add_parser(
        "worker",
        parents=[common],
        help="run workers in the foreground until SIGTERM/SIGINT",
        description="Run a worker pool in the foreground, logging to stderr, with the tasks "
        "registered on the queue (--app myapp.tasks:queue) and firing the schedules declared "
        "on it. On SIGTERM or SIGINT it stops claiming jobs, gives running ones --grace "
        "seconds to finish, hands back claimed jobs that had not started, and exits 0 (1 if "
        "jobs were still running). With --db, the database file must exist.",
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
    worker.add_argument(
        "--health-port",
        type=int,
        metavar="PORT",
        help="serve a health check for load balancers and orchestrators at "
        'http://HOST:PORT/health: 200 {"status": "ok"} while the database answers and '
        'the pool runs, else 503 ("stopping" from SIGTERM on); ?max_age=SECONDS also '
        "fails it when a job has waited longer. 0 picks a free port; the URL is logged at "
        "start. A port in use is an error (exit 2). Default: no health check",
    )
    worker.add_argument(
        "--health-host",
        default=DEFAULT_HEALTH_HOST,
        metavar="HOST",
        help=f"the address the health check listens on (default {DEFAULT_HEALTH_HOST}, this "
        "machine only; 0.0.0.0 in a container, for the orchestrator to reach it)",
    )
    worker.add_argument(
        "--metrics",
        action="store_true",
        help="count jobs for Prometheus and serve a scrape at http://HOST:PORT/metrics on "
        "the health check's port (needs --health-port and the jobq[prometheus] extra): this "
        "process's counters, or every process's with PROMETHEUS_MULTIPROC_DIR, and gauges "
        "read from the database",
    )

    verbs.add_parser(
        "stats",
        parents=[common, as_json],
        help="job counts per queue and status",
        description="Job counts per queue and status, jobs scheduled for later, the age of "
        "the oldest runnable job, paused queues and jobs finished in the last minute.",
    )

    listing = verbs.add_parser(
        "list",
        parents=[common, as_json],
        help="list jobs by id",
        description="List jobs by id, oldest first, filtered by status, task and queue, "
        "a page at a time (--after the last id shown).",
    )
    listing.add_argument(
        "--status",
        help="only jobs in this status: pending, processing, completed, failed or cancelled",
    )
    listing.add_argument("--name", help="only jobs of this task")
    listing.add_argument(
        "--queue", dest="queue_name", metavar="QUEUE", help="only jobs of this queue"
    )
    listing.add_argument(
        "--limit",
        type=int,
        default=LIST_LIMIT,
        metavar="N",
        help=f"at most this many, 1 to 10000 (default {LIST_LIMIT})",
    )
    listing.add_argument(
        "--after", type=int, metavar="ID", help="jobs with an id above this one (the next page)"
    )

    logs = verbs.add_parser(
        "logs",
        parents=[common, as_json],
        help="show the lines a job's tasks kept with current_job().log()",
        description="Show the log lines a job keeps (its newest 100, oldest first), each "
        "with its time (UTC) and the attempt that wrote it.",
    )
    logs.add_argument("job_id", type=int, metavar="ID", help="the job's id")
    add_show_parser(verbs, [common, as_json])
    add_batch_parsers(verbs, [common, as_json])
    add_enqueue_parser(verbs, [common, as_json])
    cancel = verbs.add_parser(
        "cancel",
        parents=[common, as_json],
        help="cancel a job",
        description="Cancel a job: a pending one at once; a running one is asked to stop "
        "(its worker cancels it); a finished one is left as it is.",
    )
    cancel.add_argument("job_id", type=int, metavar="ID", help="the job's id")
    retry = verbs.add_parser(
        "retry",
        parents=[common, as_json],
        help="run a failed or cancelled job again",
        description="Run a failed or cancelled job again, with all its attempts.",
    )
    retry.add_argument("job_id", type=int, metavar="ID", help="the job's id")
    retry.add_argument(
        "--delay",
        default="0",
        metavar="DURATION",
        help="wait this long first: seconds, or a number with a unit s, m, h, d, w "
        "(e.g. 30, 5m; default 0)",
    )

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
        "workers",
        parents=[common, as_json],
        help="list the live worker pools",
        description="List the worker pools live now, in every process on every host using "
        "the database: host, pid, name, queues, threads, jobs leased to it, when it started "
        "and was last seen (UTC), and whether it is stopping. A pool registers as it starts "
        "and leaves on a clean stop; a killed one drops out once its lease period passed.",
    )

    verbs.add_parser(
        "schedules",
        parents=[common, as_json],
        help="list recurring schedules",
        description="List the recurring schedules stored in the database, whichever process "
        "declared them: name, task, cron expression or interval, next and last fire time "
        "(UTC), the last job and whether it is paused. A schedule is stored when code "
        "declares it (queue.schedule, @queue.periodic): importing that code with --app "
        "stores it. Steer one with "
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
        "e.g. from a SQLite file to PostgreSQL or Redis (any two backends, either way), "
        "and cancel it in the first, in batches: "
        "running it again never copies a job twice. Stop the source's workers first; jobs "
        "they still hold are left there and counted.",
    )
    move.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="DATABASE",
        help="where the jobs are now: a SQLite file (which must exist), sqlite:///path, "
        "postgresql:// or redis:// URL",
    )
    move.add_argument(
        "--to",
        dest="target",
        required=True,
        metavar="DATABASE",
        help="where they go, e.g. postgresql://user@host/db or redis://host:6379/0 (a "
        "SQLite file must exist)",
    )
    add_bulk_verbs(verbs, [common, as_json])  # retry/cancel with filters, and delete
    for command in verbs.choices.values():
        command.epilog = EXIT_CODES
    return parser
