"""``jobq retry``, ``jobq cancel`` and ``jobq delete`` on every job matching a
filter: ``jobq retry --status failed --task send_email --older-than 1h
--arg user_id=42``.

``retry ID`` and ``cancel ID`` still act on one job (:mod:`jobq.cli.commands`);
with filter options instead of an ID they act on every match, through
:meth:`jobq.DurableQueue.retry_all`, ``cancel_all`` and ``delete_all``. Before
acting they count the matches and ask ``Retry 1,234 jobs? [y/N]`` on a
terminal; ``--yes`` skips the question, which is required when stdin is not a
terminal; ``--dry-run`` only counts. At least one filter is required.

Rule: reads the terminal only through the ``ask`` function it is given;
:mod:`jobq.cli.parser` wires it in.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from ..errors import CommandError
from ..queue import DurableQueue
from ..queue_bulk import NO_FILTER
from ..storage.bulk import CANCELLABLE, DELETABLE, RETRYABLE, BulkResult, JobFilter
from .commands import parse_duration, split_names
from .output import dump_json

BULK_VERBS = ("retry", "cancel", "delete")
"""The verbs that act on every job matching a filter."""

_ACTS = {"retry": RETRYABLE, "cancel": CANCELLABLE, "delete": DELETABLE}
_PAST = {"retry": "will run again", "cancel": "cancelled", "delete": "deleted"}
_SKIPPED = {
    "retry": "a live job of their task holds their unique key",
    "cancel": "already asked to stop",
    "delete": "processing: cancel them first",
}
_FILTER_DESTS = ("statuses", "task", "bulk_queue", "older_than", "args")


def add_bulk_verbs(verbs: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Give ``retry`` and ``cancel`` (already in ``verbs``) the filter options, with
    their job ID made optional, and add ``delete``, which takes filters only."""
    delete = verbs.add_parser(
        "delete",
        parents=parents,
        help="delete every job matching a filter",
        description="Delete every pending, completed, failed or cancelled job matching the "
        "filters (processing ones are left: cancel them first), with its log lines.",
    )
    for verb in ("retry", "cancel"):
        parser = verbs.choices[verb]
        parser.description += (
            " With filter options instead of an ID, every matching job: the matches are "
            "counted and you are asked to confirm (--yes skips it, --dry-run only counts)."
        )
        for action in parser._actions:
            if action.dest == "job_id":
                action.nargs, action.default = "?", None
                action.help = "the job's id; or give filter options instead, for every match"
    for verb in BULK_VERBS:
        _add_filters(verbs.choices[verb] if verb != "delete" else delete, verb)


def _add_filters(parser: argparse.ArgumentParser, verb: str) -> None:
    group = parser.add_argument_group("every job matching a filter (give at least one)")
    group.add_argument(
        "--status",
        action="append",
        dest="statuses",
        metavar="STATUS",
        help=f"only jobs in this status; repeatable or comma-separated ({verb} acts on "
        f"{', '.join(sorted(s.value for s in _ACTS[verb]))} jobs only)",
    )
    group.add_argument("--task", metavar="NAME", help="only jobs of this task")
    group.add_argument(
        "--queue", dest="bulk_queue", metavar="QUEUE", help="only jobs of this queue"
    )
    group.add_argument(
        "--older-than",
        metavar="AGE",
        help="only jobs unchanged for this long: seconds, or a number with a unit s, m, h, "
        "d, w (e.g. 1h)",
    )
    group.add_argument(
        "--arg",
        action="append",
        dest="args",
        metavar="KEY=VALUE",
        help="only jobs whose argument KEY equals VALUE, read as JSON (42, true, null, "
        "'\"42\"') or else as text; with --task, KEY also matches that parameter's "
        "positional argument. Repeatable. Checked job by job: add --status or --task",
    )
    group.add_argument(
        "--dry-run", action="store_true", help="count the jobs it would touch; change nothing"
    )
    group.add_argument(
        "--yes", "-y", action="store_true", help="do not ask before acting (needed off a terminal)"
    )


def wants_bulk(args: argparse.Namespace) -> bool:
    """Whether ``args`` asks for a bulk action (a bulk verb without a job ID).
    Raises :class:`CommandError` for an ID together with filter options."""
    if args.verb not in BULK_VERBS:
        return False
    filtered = any(getattr(args, dest, None) for dest in _FILTER_DESTS)
    if getattr(args, "job_id", None) is None:
        return True
    if filtered or args.dry_run or args.yes:
        raise CommandError(
            f"give a job ID or filter options, not both: 'jobq {args.verb} ID' acts on one "
            f"job, 'jobq {args.verb} --status ... --task ...' on every match"
        )
    return False


def parse_arg(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as ``(key, value)``, the value read as a JSON scalar, else as text."""
    key, equals, raw = text.partition("=")
    if not equals or not key.strip():
        raise CommandError(f"--arg must be KEY=VALUE (e.g. --arg user_id=42), got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        return key.strip(), raw
    if isinstance(value, (dict, list)):
        raise CommandError(
            f"--arg {key.strip()}: the value must be a JSON string, number, true, false or "
            f"null, or plain text, got {raw!r}"
        )
    return key.strip(), value


def bulk_filter(queue: DurableQueue, args: argparse.Namespace) -> JobFilter:
    """The filter the options describe. Raises :class:`CommandError` for a bad value
    or no filter at all."""
    arguments = dict(parse_arg(text) for text in args.args or ())
    try:
        chosen = queue.job_filter(
            status=split_names(args.statuses),
            name=args.task,
            queue=args.bulk_queue,
            older_than=None if args.older_than is None else parse_duration(args.older_than),
            args=arguments or None,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if chosen.is_empty:
        raise CommandError(
            f"{NO_FILTER.replace('status=...', '--status ...')}; or 'jobq {args.verb} ID' "
            "for one job"
        )
    return chosen


def ask_on_terminal(question: str) -> bool | None:
    """Ask ``question`` on stdin when it is a terminal: True for y/yes, False for
    anything else; None when stdin is not a terminal."""
    if not sys.stdin.isatty():
        return None
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def run_bulk(
    queue: DurableQueue,
    args: argparse.Namespace,
    ask: Callable[[str], bool | None] = ask_on_terminal,
) -> str:
    """Count, confirm (unless ``--yes`` or ``--dry-run``) and run the bulk action;
    return what to print. Raises :class:`CommandError` when refused."""
    verb: str = args.verb
    if verb == "retry" and parse_duration(args.delay) != 0:
        raise CommandError("--delay works with one job ID only; bulk retries run now")
    chosen = bulk_filter(queue, args)
    matched = queue.count(filter=chosen.narrowed(_ACTS[verb]))
    result = BulkResult(0)
    if not args.dry_run and matched:
        if not args.yes:
            answer = ask(f"{verb.capitalize()} {matched:,} job{'s' if matched != 1 else ''}?")
            if answer is None:
                raise CommandError(
                    f"{matched:,} jobs match; stdin is not a terminal, so nothing was asked "
                    f"and nothing done: add --yes to {verb} them (or --dry-run to count)"
                )
            if not answer:
                return "nothing done"
        act = {"retry": queue.retry_all, "cancel": queue.cancel_all, "delete": queue.delete_all}
        result = act[verb](filter=chosen)
    if args.json:
        record = {"action": verb, "dry_run": bool(args.dry_run), "matched": matched}
        return dump_json({**record, "changed": result.changed, "skipped": result.skipped})
    if args.dry_run or not matched:
        counted = f"{matched:,} job{'s' if matched != 1 else ''} match; nothing done"
        return counted + _positions_note(queue, args)
    text = f"{result.changed:,} job{'s' if result.changed != 1 else ''} {_PAST[verb]}"
    if result.skipped:
        text += f"; {result.skipped:,} left as they are ({_SKIPPED[verb]})"
    return text + _positions_note(queue, args)


def _positions_note(queue: DurableQueue, args: argparse.Namespace) -> str:
    """A second line when --arg cannot match positional arguments: the task's
    parameters are known only when its code registered it (--app)."""
    if not args.args or (args.task is not None and args.task in queue.tasks):
        return ""
    if args.task is None:
        return "\nnote: without --task, --arg matches keyword arguments only"
    return (
        f"\nnote: task {args.task!r} is not registered here (open the queue with --app), "
        "so --arg matched keyword arguments only"
    )
