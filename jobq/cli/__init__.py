"""The ``jobq`` command line: run workers and look after the jobs of one database.

::

    jobq worker --app myapp.tasks:queue --concurrency 4
    jobq stats --app myapp.tasks --json
    jobq stats --db instance/jobs.db
    jobq list --db instance/jobs.db --status failed --limit 20
    jobq retry 42 --db instance/jobs.db
    jobq batch 7 --db instance/jobs.db --json
    jobq schedules --db instance/jobs.db
    jobq workers --db instance/jobs.db --json
    jobq pause-schedule nightly-report --db instance/jobs.db
    jobq move-jobs --from instance/jobs.db --to postgresql://app@db/app

The package, one module a concept:

- :mod:`jobq.cli.parser`: the argparse front end; :mod:`jobq.cli.entry`: :func:`main`;
- :mod:`jobq.cli.locate`: where the queue comes from (``--app MODULE[:NAME]``,
  ``--db``, ``--import``), and the one rule for a missing database file;
- :mod:`jobq.cli.commands`: what each command does, on a queue it is given
  (:func:`show_stats`, :func:`show_jobs`, :func:`show_job_logs`, :func:`cancel_job`,
  :func:`retry_job`, :func:`purge_jobs`, :func:`show_workers`, :func:`show_schedules`,
  :func:`pause_schedule`,
  :func:`resume_schedule`, :func:`trigger_schedule`, :func:`move_jobs`): the text
  to print, or :class:`~jobq.errors.CommandError`;
- :mod:`jobq.cli.show`: :func:`show_job`, the ``show ID`` command (a job, its
  attempts that did not complete and its timeline);
- :mod:`jobq.cli.batches`: :func:`show_batch`, :func:`show_batches` and
  :func:`cancel_batch`, the ``batch ID``, ``batches`` and ``cancel-batch ID`` commands;
- :mod:`jobq.cli.enqueue`: :func:`enqueue_by_name`, the ``enqueue NAME`` command;
- :mod:`jobq.cli.run`: :func:`run_worker`, the worker stopped by SIGTERM or SIGINT;
- :mod:`jobq.cli.health`: :class:`HealthServer`, the worker's ``--health-port`` check;
- :mod:`jobq.cli.output`: tables, JSON records, :func:`terminal_safe`,
  :class:`TerminalSafeFormatter` and :func:`configure_logging`.

``flask_jobq.cli`` builds ``flask jobq`` on the commands and the worker here.

Rule: this layer sits above the queue and below the handlers and Flask: it
imports the queue, storage, schedules and basic values, never
:mod:`jobq.handlers`, :mod:`flask_jobq` or Flask, and of third-party packages
nothing. This module only re-exports.

Exit codes (:data:`EXIT_CODES`): 0 success; 1 when a worker stopped with jobs
still running after its grace period; 2 for bad input (unknown id or status,
missing database file, no queue found, bad option, unknown schedule, a health
port in use), reported on one line of stderr, or a module given to
``--app``/``--import`` that raised while imported (its own traceback printed first);
141, quietly, when the reader of the output went away (``jobq list | head``).
"""

from __future__ import annotations

from ..errors import CommandError as CommandError
from .batches import cancel_batch as cancel_batch
from .batches import show_batch as show_batch
from .batches import show_batches as show_batches
from .commands import LIST_LIMIT as LIST_LIMIT
from .commands import MAX_LIST_LIMIT as MAX_LIST_LIMIT
from .commands import cancel_job as cancel_job
from .commands import move_jobs as move_jobs
from .commands import parse_duration as parse_duration
from .commands import parse_job_id as parse_job_id
from .commands import parse_status as parse_status
from .commands import pause_schedule as pause_schedule
from .commands import purge_jobs as purge_jobs
from .commands import resume_schedule as resume_schedule
from .commands import retry_job as retry_job
from .commands import show_job_logs as show_job_logs
from .commands import show_jobs as show_jobs
from .commands import show_schedules as show_schedules
from .commands import show_stats as show_stats
from .commands import show_workers as show_workers
from .commands import split_names as split_names
from .commands import trigger_schedule as trigger_schedule
from .enqueue import enqueue_by_name as enqueue_by_name
from .entry import main as main
from .health import DEFAULT_HEALTH_HOST as DEFAULT_HEALTH_HOST
from .health import HealthServer as HealthServer
from .locate import DATABASE_ENV as DATABASE_ENV
from .output import TerminalSafeFormatter as TerminalSafeFormatter
from .output import configure_logging as configure_logging
from .output import terminal_safe as terminal_safe
from .parser import EXIT_CODES as EXIT_CODES
from .parser import build_parser as build_parser
from .run import DEFAULT_GRACE as DEFAULT_GRACE
from .run import run_worker as run_worker
from .show import show_job as show_job

__all__ = [
    "DATABASE_ENV",
    "DEFAULT_GRACE",
    "DEFAULT_HEALTH_HOST",
    "EXIT_CODES",
    "HealthServer",
    "LIST_LIMIT",
    "MAX_LIST_LIMIT",
    "CommandError",
    "TerminalSafeFormatter",
    "build_parser",
    "cancel_batch",
    "cancel_job",
    "configure_logging",
    "enqueue_by_name",
    "main",
    "move_jobs",
    "parse_duration",
    "parse_job_id",
    "parse_status",
    "pause_schedule",
    "purge_jobs",
    "resume_schedule",
    "retry_job",
    "run_worker",
    "show_batch",
    "show_batches",
    "show_job",
    "show_job_logs",
    "show_jobs",
    "show_schedules",
    "show_stats",
    "show_workers",
    "split_names",
    "terminal_safe",
    "trigger_schedule",
]
