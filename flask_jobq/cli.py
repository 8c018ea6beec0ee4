"""``flask jobq ...``: the ``jobq`` command line on the current app's queue.

The verbs and their output are those of the plain ``jobq`` script
(:mod:`jobq.cli`, whose commands and worker do the work); the queue is the app's
(``JOBQ_DATABASE``), and its tasks are the ones registered with the extension,
so no ``--db`` or ``--import`` is needed. ``flask jobq worker`` is the separate
worker process of an app configured with ``JOBQ_START_WORKERS = False``, with the
same ``--health-port`` check as ``jobq worker`` (:mod:`jobq.cli.health`)::

    flask --app myapp jobq worker --concurrency 8 --health-port 8081
    flask --app myapp jobq list --status failed --json
    flask --app myapp jobq schedules
    flask --app myapp jobq workers --json
    flask --app myapp jobq trigger-schedule nightly-report
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeVar

import click
from flask.cli import AppGroup

from jobq import DurableQueue, JobqError
from jobq import cli as core

from .state import state_for

F = TypeVar("F", bound=Callable[..., Any])


class CommandFailed(click.ClickException):
    """Bad input to a ``flask jobq`` command: ``Error: ...`` on one line, exit code 2."""

    exit_code = 2


jobq_cli = AppGroup("jobq", help="Run jobq workers and look after the app's jobs.")
"""The ``flask jobq`` command group; ``JobQ.init_app`` adds it to ``app.cli``."""


def _failed(exc: Exception) -> CommandFailed:
    return CommandFailed(core.terminal_safe(str(exc)))


def _queue() -> DurableQueue:
    try:
        return state_for().queue
    except RuntimeError as exc:  # the app has no jobq extension
        raise _failed(exc) from None


def _answer(make_text: Callable[[], str]) -> None:
    try:
        text = make_text()
    except (JobqError, ValueError) as exc:
        raise _failed(exc) from None
    # Job data in the text (names, errors) reaches the terminal escaped.
    click.echo(core.terminal_safe(text, keep_lines=True))


def _json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(command)


@jobq_cli.command("worker")
@click.option(
    "--concurrency",
    "-c",
    type=int,
    default=None,
    help="Worker threads, >= 1 (default JOBQ_CONCURRENCY).",
)
@click.option(
    "--queues",
    "-q",
    multiple=True,
    help="Comma-separated queues to take jobs from; repeatable "
    "(default JOBQ_QUEUES, or the queues of the registered tasks).",
)
@click.option(
    "--grace",
    type=float,
    default=core.DEFAULT_GRACE,
    show_default=True,
    help="Seconds running jobs get to finish on stop.",
)
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    help="Level of the log written to stderr.",
)
@click.option(
    "--health-port",
    type=click.IntRange(0, 65535),
    default=None,
    metavar="PORT",
    help="Serve a health check at http://HOST:PORT/health: 200 while the database "
    "answers and the pool runs, else 503 ('stopping' from SIGTERM on); ?max_age=SECONDS "
    "also fails it when a job has waited longer. 0 picks a free port (logged at start). "
    "A port in use is an error (exit 2).",
)
@click.option(
    "--health-host",
    default=core.DEFAULT_HEALTH_HOST,
    show_default=True,
    metavar="HOST",
    help="The address the health check listens on; 0.0.0.0 in a container.",
)
@click.option(
    "--metrics",
    is_flag=True,
    help="Count jobs for Prometheus and serve a scrape at http://HOST:PORT/metrics on the "
    "health check's port (needs --health-port and the jobq[prometheus] extra).",
)
def worker(
    concurrency: int | None,
    queues: tuple[str, ...],
    grace: float,
    log_level: str,
    health_port: int | None,
    health_host: str,
    metrics: bool,
) -> None:
    """Run workers in the foreground until SIGTERM or SIGINT.

    On the signal they stop claiming jobs, running jobs get --grace seconds to
    finish, and claimed jobs that had not started are handed back. Exits 0, or 1
    if jobs were still running. Works whatever JOBQ_START_WORKERS says. With
    --health-port, a load balancer or orchestrator can probe GET /health, and
    with --metrics too, Prometheus can scrape GET /metrics.
    """
    try:
        state = state_for()
    except RuntimeError as exc:
        raise _failed(exc) from None
    core.configure_logging(log_level)
    chosen = core.split_names(queues)
    try:
        code = core.run_worker(
            state.queue,
            concurrency=state.concurrency if concurrency is None else concurrency,
            queues=chosen if chosen is not None else state.queues,
            grace=grace,
            health_port=health_port,
            health_host=health_host,
            metrics=metrics,
            counted=state.settings.metrics,  # JOBQ_METRICS counts this app's jobs already
        )
    except (JobqError, ValueError) as exc:
        raise _failed(exc) from None
    click.get_current_context().exit(code)


@jobq_cli.command("stats")
@_json_option
def stats(as_json: bool) -> None:
    """Job counts per queue and status."""
    _answer(lambda: core.show_stats(_queue(), as_json=as_json))


@jobq_cli.command("list")
@click.option("--status", help="pending, processing, completed, failed or cancelled.")
@click.option("--name", help="Only jobs of this task.")
@click.option("--queue", "queue_name", help="Only jobs of this queue.")
@click.option(
    "--limit", type=int, default=core.LIST_LIMIT, show_default=True, help="At most this many."
)
@click.option("--after", type=int, metavar="ID", help="Jobs with an id above this one.")
@_json_option
def list_jobs(
    status: str | None,
    name: str | None,
    queue_name: str | None,
    limit: int,
    after: int | None,
    as_json: bool,
) -> None:
    """List jobs by id, oldest first."""
    _answer(
        lambda: core.show_jobs(
            _queue(),
            status=status,
            name=name,
            queue_name=queue_name,
            limit=limit,
            after=after,
            as_json=as_json,
        )
    )


@jobq_cli.command("logs")
@click.argument("job_id", metavar="ID")
@_json_option
def logs(job_id: str, as_json: bool) -> None:
    """Show the lines a job's tasks kept with current_job().log()."""
    _answer(lambda: core.show_job_logs(_queue(), core.parse_job_id(job_id), as_json=as_json))


@jobq_cli.command("show")
@click.argument("job_id", metavar="ID")
@_json_option
def show(job_id: str, as_json: bool) -> None:
    """Show one job, its attempts that did not complete (with their errors) and its timeline."""
    _answer(lambda: core.show_job(_queue(), core.parse_job_id(job_id), as_json=as_json))


@jobq_cli.command("batch")
@click.argument("batch_id", metavar="ID", type=int)
@_json_option
def batch(batch_id: int, as_json: bool) -> None:
    """Show one batch: its jobs' counts per status and its callbacks."""
    _answer(lambda: core.show_batch(_queue(), batch_id, as_json=as_json))


@jobq_cli.command("batches")
@click.option("--limit", type=int, default=20, show_default=True, help="Batches to show.")
@click.option("--before", type=int, default=None, metavar="ID", help="Batches below this id.")
@_json_option
def batches(limit: int, before: int | None, as_json: bool) -> None:
    """List the newest batches with their counts."""
    _answer(lambda: core.show_batches(_queue(), limit=limit, before=before, as_json=as_json))


@jobq_cli.command("cancel-batch")
@click.argument("batch_id", metavar="ID", type=int)
@_json_option
def cancel_batch(batch_id: int, as_json: bool) -> None:
    """Cancel a batch: its pending jobs now, its running ones asked to stop."""
    _answer(lambda: core.cancel_batch(_queue(), batch_id, as_json=as_json))


@jobq_cli.command("enqueue")
@click.argument("name", metavar="NAME")
@click.option("--args", "args_json", default="[]", metavar="JSON", help="A JSON array.")
@click.option("--kwargs", "kwargs_json", default="{}", metavar="JSON", help="A JSON object.")
@click.option("--queue", "job_queue", help="The queue (default: the task's, or default).")
@click.option("--priority", type=int, help="Higher runs first (default 0).")
@click.option("--delay", help="Start no sooner than this (e.g. 30, 5m).")
@click.option("--expires-in", help="Not started this long after it is due: cancelled.")
@click.option("--max-attempts", type=int, help="Attempts allowed (default 3).")
@click.option("--unique-key", help="No second live job of this task with this key.")
@_json_option
def enqueue(name: str, args_json: str, kwargs_json: str, as_json: bool, **options: Any) -> None:
    """Store a job for a task given by its name, with JSON arguments."""
    parsed = argparse.Namespace(
        name=name, args=args_json, kwargs=kwargs_json, json=as_json, **options
    )
    _answer(lambda: core.enqueue_by_name(_queue(), parsed))


@jobq_cli.command("cancel")
@click.argument("job_id", metavar="ID")
@_json_option
def cancel(job_id: str, as_json: bool) -> None:
    """Cancel a job (a running one is asked to stop)."""
    _answer(lambda: core.cancel_job(_queue(), core.parse_job_id(job_id), as_json=as_json))


@jobq_cli.command("retry")
@click.argument("job_id", metavar="ID")
@click.option("--delay", default="0", help="Wait this long first (e.g. 30, 5m).")
@_json_option
def retry(job_id: str, delay: str, as_json: bool) -> None:
    """Run a failed or cancelled job again."""
    _answer(
        lambda: core.retry_job(_queue(), core.parse_job_id(job_id), delay=delay, as_json=as_json)
    )


@jobq_cli.command("purge")
@click.option(
    "--older-than",
    required=True,
    metavar="AGE",
    help="Seconds, or a number with a unit s, m, h, d, w (e.g. 7d, 12h).",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    help="completed, failed or cancelled; repeatable or comma-separated (default: all three).",
)
@_json_option
def purge(older_than: str, statuses: tuple[str, ...], as_json: bool) -> None:
    """Delete finished jobs older than a given age."""
    _answer(
        lambda: core.purge_jobs(_queue(), older_than=older_than, statuses=statuses, as_json=as_json)
    )


@jobq_cli.command("workers")
@_json_option
def workers(as_json: bool) -> None:
    """List the live worker pools of every process and host.

    Host, pid, name, queues, threads, jobs leased, started and last seen (UTC),
    and whether it is stopping. A pool registers as it starts and leaves on a
    clean stop; a killed one drops out once its lease period passed.
    """
    _answer(lambda: core.show_workers(_queue(), as_json=as_json))


@jobq_cli.command("schedules")
@_json_option
def schedules(as_json: bool) -> None:
    """List recurring schedules: when they fire, their last job, paused or not.

    Shows the schedules stored in the database, whichever process declared
    them: a schedule is stored as soon as code (or JOBQ_SCHEDULES) declares
    it. Steer one with pause-schedule,
    resume-schedule and trigger-schedule.
    """
    _answer(lambda: core.show_schedules(_queue(), as_json=as_json))


@jobq_cli.command("pause-schedule")
@click.argument("name", metavar="NAME")
@_json_option
def pause_schedule(name: str, as_json: bool) -> None:
    """Stop firing a schedule, in every process, until it is resumed."""
    _answer(lambda: core.pause_schedule(_queue(), name, as_json=as_json))


@jobq_cli.command("resume-schedule")
@click.argument("name", metavar="NAME")
@_json_option
def resume_schedule(name: str, as_json: bool) -> None:
    """Fire a paused schedule again, from its next fire time after now.

    Fires missed while it was paused are skipped.
    """
    _answer(lambda: core.resume_schedule(_queue(), name, as_json=as_json))


@jobq_cli.command("trigger-schedule")
@click.argument("name", metavar="NAME")
@_json_option
def trigger_schedule(name: str, as_json: bool) -> None:
    """Enqueue a schedule's job now, paused or not; its fire times stay as they are."""
    _answer(lambda: core.trigger_schedule(_queue(), name, as_json=as_json))
