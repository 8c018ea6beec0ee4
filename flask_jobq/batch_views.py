"""The monitor's batch endpoints (JSON), on the monitoring blueprint of
:mod:`flask_jobq.views`, which calls :func:`register_batch_views`:

- ``GET <prefix>/batches?limit=20&before=ID``: the newest batches with their
  counts (``queue.list_batches``);
- ``GET <prefix>/batches/<id>``: one batch, its counts per status, whether it is
  sealed, when it finished and its callback jobs (``batch.status()``);
- ``POST <prefix>/batches/<id>/cancel``: cancel its pending jobs, ask its running
  ones to stop (``batch.cancel()``); answers the batch.

Documented in :mod:`flask_jobq.openapi_batches`; the blueprint's authorisation
covers them, and the POST follows its rules (a JSON body or the header).
"""

from __future__ import annotations

from flask import Blueprint, abort, request
from flask.typing import ResponseReturnValue

from jobq.batches import Batch
from jobq.errors import BatchNotFound

from .monitor_input import command_body
from .state import state_for

_MAX_ID = 2**63 - 1
_LIST_PARAMETERS = frozenset({"limit", "before"})


def register_batch_views(bp: Blueprint) -> None:
    """Add the batch endpoints to the monitoring blueprint ``bp``."""

    @bp.get("/batches")
    def list_batches() -> ResponseReturnValue:
        """The newest batches, at most ``limit`` (1 to 1000, default 20), below ``before``."""
        unknown = sorted(set(request.args) - _LIST_PARAMETERS)
        if unknown:
            abort(400, f"unknown query parameter(s) {unknown}; allowed: {sorted(_LIST_PARAMETERS)}")
        limit = _int_arg("limit", 20, 1, 1000) or 20
        before = _int_arg("before", None, 1, _MAX_ID)
        states = state_for().queue.list_batches(before_id=before, limit=limit)
        return {"batches": [state.as_dict() for state in states]}

    @bp.get("/batches/<int:batch_id>")
    def get_batch(batch_id: int) -> ResponseReturnValue:
        """One batch with its counts."""
        return _batch(batch_id).status().as_dict()

    @bp.post("/batches/<int:batch_id>/cancel")
    def cancel_batch(batch_id: int) -> ResponseReturnValue:
        """Seal the batch and cancel its jobs; returns the batch."""
        command_body()
        return _batch(batch_id).cancel().as_dict()


def _batch(batch_id: int) -> Batch:
    queue = state_for().queue
    try:
        if batch_id > _MAX_ID:
            raise BatchNotFound(batch_id)
        return queue.get_batch(batch_id)
    except BatchNotFound as exc:
        abort(404, str(exc))


def _int_arg(name: str, default: int | None, low: int, high: int) -> int | None:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        abort(400, f"{name} must be an integer, got {text[:50]!r}")
    if not low <= value <= high:
        abort(400, f"{name} must be {low} to {high}, got {value}")
    return value
