"""``jobq enqueue NAME``: store a job for a task by its name, from a shell or a cron
line, with arguments as JSON (:meth:`jobq.DurableQueue.enqueue_by_name`).

Rule: imports the queue, the commands' parsing and the output helpers; never imports Flask.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from ..errors import CommandError
from ..queue import DurableQueue
from .commands import parse_duration
from .output import dump_json, job_record, terminal_safe


def add_enqueue_parser(verbs: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add the ``enqueue`` verb to the subparsers ``verbs`` (``parents``: the common
    options and ``--json``)."""
    enqueue = verbs.add_parser(
        "enqueue",
        parents=list(parents),
        help="store a job for a task given by its name, with JSON arguments",
        description="Store a job for the task called NAME. The task need not be importable "
        "here: the arguments are checked to be JSON, and against the function's signature "
        "by the worker that runs it (a job whose arguments do not fit fails at once with "
        "ArgumentError). With --app, a task registered there is checked at once.",
    )
    enqueue.add_argument("name", metavar="NAME", help="the task's registered name")
    enqueue.add_argument(
        "--args", default="[]", metavar="JSON", help="positional arguments, a JSON array"
    )
    enqueue.add_argument(
        "--kwargs", default="{}", metavar="JSON", help="keyword arguments, a JSON object"
    )
    enqueue.add_argument(
        "--queue",
        dest="job_queue",
        metavar="QUEUE",
        help="the queue to put it in (default: the task's, or default)",
    )
    enqueue.add_argument("--priority", type=int, help="higher runs first (default 0)")
    enqueue.add_argument(
        "--delay",
        metavar="DURATION",
        help="start no sooner than this: seconds, or a number with a unit s, m, h, d, w",
    )
    enqueue.add_argument(
        "--expires-in",
        metavar="DURATION",
        help="if it has not started this long after now, it ends cancelled (Expired)",
    )
    enqueue.add_argument("--max-attempts", type=int, help="attempts allowed (default 3)")
    enqueue.add_argument(
        "--unique-key", help="no second job of this task with this key while one is live"
    )
    enqueue.add_argument(
        "--depends-on",
        type=int,
        action="append",
        metavar="ID",
        help="run only once job ID has completed (repeat for several jobs)",
    )
    enqueue.add_argument(
        "--on-dependency-failure",
        choices=["cancel", "fail", "run"],
        help="when a job it depends on fails or is cancelled (default cancel)",
    )


def _json(option: str, text: str, kind: type) -> Any:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{option} is not JSON: {exc}") from None
    if not isinstance(value, kind):
        raise CommandError(f"{option} must be a JSON {'array' if kind is list else 'object'}")
    return value


def enqueue_by_name(queue: DurableQueue, args: argparse.Namespace) -> str:
    """The text of ``enqueue NAME``: the job stored. Raises :class:`CommandError`
    for arguments or options that are refused (nothing is stored then)."""
    options: dict[str, Any] = {
        "queue": args.job_queue,
        "priority": args.priority,
        "max_attempts": args.max_attempts,
        "unique_key": args.unique_key,
        "depends_on": args.depends_on,
        "on_dependency_failure": args.on_dependency_failure,
    }
    if args.delay is not None:
        options["delay"] = parse_duration(args.delay)
    if args.expires_in is not None:
        options["expires_in"] = parse_duration(args.expires_in)
    try:
        job = queue.enqueue_by_name(
            args.name,
            _json("--args", args.args, list),
            _json("--kwargs", args.kwargs, dict),
            **{key: value for key, value in options.items() if value is not None},
        )
    except (TypeError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        return dump_json(job_record(job))
    return f"job {job.id} enqueued: {terminal_safe(job.name)} in queue {terminal_safe(job.queue)}"
