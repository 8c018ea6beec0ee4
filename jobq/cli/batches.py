"""``jobq batch ID``, ``jobq batches`` and ``jobq cancel-batch ID``: a batch's counts
and callbacks, the newest batches, and cancelling one. Also behind ``flask jobq
batch``, ``flask jobq batches`` and ``flask jobq cancel-batch``.

Rule: imports the queue, the storage's batch records and the output helpers;
never imports Flask.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ..errors import BatchNotFound, CommandError
from ..queue import DurableQueue
from ..storage.batches import BatchState
from .output import dump_json, format_time, terminal_safe


def add_batch_parsers(verbs: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add the ``batch``, ``batches`` and ``cancel-batch`` verbs to the subparsers
    ``verbs`` (``parents``: the common options and ``--json``)."""
    one = verbs.add_parser(
        "batch",
        parents=list(parents),
        help="show one batch: its jobs' counts per status and its callbacks",
        description="Show one batch: how many of its jobs are pending, processing, "
        "completed, failed and cancelled, whether it is sealed, when it finished, and "
        "the callback jobs it enqueued (times in UTC).",
    )
    one.add_argument("batch_id", type=int, metavar="ID", help="the batch's id")
    listing = verbs.add_parser(
        "batches",
        parents=list(parents),
        help="list the newest batches with their counts",
        description="List batches, newest first, with their counts; --before the last "
        "id shown for the next page.",
    )
    listing.add_argument("--limit", type=int, default=20, help="batches to show (default 20)")
    listing.add_argument("--before", type=int, metavar="ID", help="batches below this id")
    cancel = verbs.add_parser(
        "cancel-batch",
        parents=list(parents),
        help="cancel a batch: its pending jobs now, its running ones asked to stop",
        description="Seal a batch and cancel its jobs: pending ones end cancelled at once, "
        "running ones are asked to stop. Its callbacks run once the running ones have ended.",
    )
    cancel.add_argument("batch_id", type=int, metavar="ID", help="the batch's id")


def show_batch(queue: DurableQueue, batch_id: int, *, as_json: bool = False) -> str:
    """The text of ``batch ID``. Raises :class:`CommandError` for an unknown id."""
    try:
        state = queue.get_batch(batch_id).status()
    except BatchNotFound as exc:
        raise CommandError(str(exc)) from None
    return dump_json(state.as_dict()) if as_json else "\n".join(_batch_lines(state))


def show_batches(
    queue: DurableQueue, *, limit: int = 20, before: int | None = None, as_json: bool = False
) -> str:
    """The text of ``batches``: one line per batch, newest first."""
    if not 1 <= limit <= 1000:
        raise CommandError(f"--limit must be 1 to 1000, got {limit}")
    states = queue.list_batches(before_id=before, limit=limit)
    if as_json:
        return dump_json({"batches": [state.as_dict() for state in states]})
    if not states:
        return "no batches"
    return "\n".join(_summary(state) for state in states)


def cancel_batch(queue: DurableQueue, batch_id: int, *, as_json: bool = False) -> str:
    """The text of ``cancel-batch ID``. Raises :class:`CommandError` for an unknown id."""
    try:
        state = queue.get_batch(batch_id).cancel()
    except BatchNotFound as exc:
        raise CommandError(str(exc)) from None
    if as_json:
        return dump_json(state.as_dict())
    return f"cancelled batch {state.id}: {state.cancelled} jobs cancelled, " + (
        f"{state.processing} running asked to stop"
    )


def _state_word(state: BatchState) -> str:
    if state.finished_at is not None:
        return "finished"
    return "running (sealed)" if state.sealed else "open"


def _summary(state: BatchState) -> str:
    return (
        f"batch {state.id}  {_state_word(state):<16} {state.ended}/{state.total} ended  "
        f"{state.completed} completed, {state.failed} failed, {state.cancelled} cancelled  "
        f"created {format_time(state.created_at)}"
    )


def _batch_lines(state: BatchState) -> list[str]:
    callbacks = ", ".join(
        f"{kind} {terminal_safe(name)}"
        for kind, name in (
            ("on_complete", state.on_complete),
            ("on_success", state.on_success),
            ("on_failure", state.on_failure),
        )
        if name is not None
    )
    lines = [
        f"batch {state.id}: {_state_word(state)}"
        + (", cancel requested" if state.cancel_requested else ""),
        f"  jobs       {state.total} in all: {state.pending} pending, {state.processing} "
        f"processing, {state.completed} completed, {state.failed} failed, "
        f"{state.cancelled} cancelled",
        f"  callbacks  {callbacks or 'none'} (queue {terminal_safe(state.queue)})",
        f"  created    {format_time(state.created_at)}",
        f"  finished   {format_time(state.finished_at)}",
    ]
    if state.callback_job_ids:
        lines.append("  enqueued   jobs " + ", ".join(map(str, state.callback_job_ids)))
    meta = state.decoded_meta()
    if meta:
        lines.append(f"  meta       {terminal_safe(dump_json(meta))}")
    return lines
