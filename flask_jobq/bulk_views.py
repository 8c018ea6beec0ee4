"""The monitor's job filters and bulk actions: ``GET <prefix>/jobs`` with every
filter, ``GET <prefix>/jobs/count``, and ``POST <prefix>/jobs/retry``,
``/jobs/cancel`` and ``/jobs/delete`` on every job matching a filter.

Filters, in the query of the GET endpoints and as members of the POST body:

- ``status``: a status name; repeat it (GET) or give a list (POST) for several.
- ``name`` (the task), ``queue``.
- ``created_after``, ``created_before``: epoch seconds.
- ``older_than``: seconds since the job last changed.
- arguments: ``arg=user_id:42`` in a query (repeatable; the value after the
  first ``:`` is read as JSON, ``42``, ``true``, ``null`` or ``"42"``, and
  taken as a plain string when it is not JSON, so ``arg=email:a@b.c`` works),
  ``"args": {"user_id": 42}`` in a body. With ``name`` of a registered task,
  a key also matches that parameter's positional argument. Argument filters
  are checked row by row: give a status or task with them on a large table.

A bulk POST may carry ``"dry_run": true`` (answer how many jobs the action would
touch, and do nothing) and ``"expect": n`` (409 unless exactly ``n`` jobs match
now: what a confirmation dialog showed is what runs). Without any filter it is
refused with 400, so nobody empties a queue by accident. The POST rules of
:mod:`flask_jobq.views` hold: a JSON body or the ``X-Jobq-Request: 1`` header.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, request
from flask.typing import ResponseReturnValue

import jobq
from jobq.queue_bulk import NO_FILTER
from jobq.storage.bulk import CANCELLABLE, DELETABLE, RETRYABLE, BulkResult, JobFilter

from . import monitor_input as shared
from .state import state_for

LIST_PARAMETERS = frozenset(
    {
        "status",
        "name",
        "queue",
        "after",
        "limit",
        "order",
        "created_after",
        "created_before",
        "older_than",
        "arg",
    }
)
"""The query parameters ``GET <prefix>/jobs`` accepts."""
COUNT_PARAMETERS = LIST_PARAMETERS - {"after", "limit", "order"}
"""The query parameters ``GET <prefix>/jobs/count`` accepts."""
BODY_FILTERS = frozenset(
    {"status", "name", "queue", "created_after", "created_before", "older_than", "args"}
)
"""The filter members of a bulk action's JSON body."""
BODY_MEMBERS = BODY_FILTERS | {"dry_run", "expect"}

_ACTIONS: dict[str, frozenset[jobq.JobStatus]] = {
    "retry": RETRYABLE,
    "cancel": CANCELLABLE,
    "delete": DELETABLE,
}


def register_bulk_views(bp: Blueprint) -> None:
    """Add the job list with filters (endpoint ``list_jobs``), the count and the
    bulk actions to the monitor blueprint ``bp``."""
    bp.add_url_rule("/jobs", "list_jobs", list_jobs, methods=["GET"])
    bp.add_url_rule("/jobs/count", "count_jobs", count_jobs, methods=["GET"])
    for action in _ACTIONS:
        bp.add_url_rule(f"/jobs/{action}", f"{action}_jobs", _bulk_view(action), methods=["POST"])


def list_jobs() -> ResponseReturnValue:
    """One page of jobs matching every filter given, with the cursor of the next page."""
    filters = _query_filters(LIST_PARAMETERS)
    order = request.args.get("order", "asc")
    if order not in ("asc", "desc"):
        abort(400, f"order must be 'asc' or 'desc', got {order!r}")
    limit = shared.int_arg("limit", 1, shared.MAX_PAGE_SIZE) or shared.DEFAULT_PAGE_SIZE
    after = shared.int_arg("after", 0, shared.MAX_JOB_ID)
    jobs = _checked(
        lambda: state_for().queue.find(
            **filters, after=after, limit=limit + 1, newest_first=order == "desc"
        )
    )
    page = jobs[:limit]
    return {
        "jobs": [shared.job_json(job) for job in page],
        "next_after": page[-1].id if len(jobs) > limit else None,
    }


def count_jobs() -> ResponseReturnValue:
    """How many jobs match every filter given: ``{"count": n}``."""
    filters = _query_filters(COUNT_PARAMETERS)
    return {"count": _checked(lambda: state_for().queue.count(**filters))}


def _bulk_view(action: str) -> Callable[[], ResponseReturnValue]:
    def view() -> ResponseReturnValue:
        body = shared.command_body()
        unknown = sorted(set(body) - BODY_MEMBERS)
        if unknown:
            abort(400, f"unknown member(s) {unknown}; allowed: {sorted(BODY_MEMBERS)}")
        dry_run = body.get("dry_run", False)
        expect = body.get("expect")
        if not isinstance(dry_run, bool):
            abort(400, f"dry_run must be true or false, got {dry_run!r}")
        if expect is not None and (
            not isinstance(expect, int) or isinstance(expect, bool) or expect < 0
        ):
            abort(400, f"expect must be an integer >= 0, got {expect!r}")
        queue = state_for().queue
        chosen = _checked(lambda: queue.job_filter(**_body_filters(body)))
        if chosen.is_empty:
            abort(400, NO_FILTER)
        matched = queue.count(filter=chosen.narrowed(_ACTIONS[action]))
        if expect is not None and matched != expect:
            return shared.error(
                409,
                "Conflict",
                f"{matched} jobs match now, not the {expect} expected; count again and confirm",
            )
        result = BulkResult(0) if dry_run else _run(action, chosen)
        return {
            "action": action,
            "dry_run": dry_run,
            "matched": matched,
            "changed": result.changed,
            "skipped": result.skipped,
        }

    view.__name__ = f"{action}_jobs"
    view.__doc__ = (
        f"{action.capitalize()} every job matching the filter in the JSON body "
        "(or count them: dry_run)."
    )
    return view


def _run(action: str, chosen: JobFilter) -> BulkResult:
    queue = state_for().queue
    act = {"retry": queue.retry_all, "cancel": queue.cancel_all, "delete": queue.delete_all}
    return act[action](filter=chosen)


def _checked(call: Callable[[], Any]) -> Any:
    """``call()``, a ValueError (a bad filter value) answered 400."""
    try:
        return call()
    except ValueError as exc:
        abort(400, str(exc))


def _query_filters(allowed: frozenset[str]) -> dict[str, Any]:
    """The filter keywords of :meth:`jobq.DurableQueue.find` from the query string."""
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        abort(400, f"unknown query parameter(s) {unknown}; allowed: {sorted(allowed)}")
    filters: dict[str, Any] = {}
    statuses = request.args.getlist("status")
    if statuses:
        filters["status"] = statuses
    for key in ("name", "queue"):
        if key in request.args:
            filters[key] = request.args[key]
    for key in ("created_after", "created_before", "older_than"):
        if key in request.args:
            filters[key] = _number(key, request.args[key])
    args: dict[str, Any] = {}
    for text in request.args.getlist("arg"):
        key, colon, value = text.partition(":")
        if not colon:
            abort(400, f"arg must be key:value (e.g. arg=user_id:42), got {text!r}")
        args[key] = _scalar(value)
    if args:
        filters["args"] = args
    return filters


def _body_filters(body: dict[str, Any]) -> dict[str, Any]:
    """The filter keywords from a bulk action's JSON body, their types checked."""
    filters = {key: body[key] for key in BODY_FILTERS if body.get(key) is not None}
    status = filters.get("status")
    if status is not None and not isinstance(status, (str, list)):
        abort(400, f"status must be a status name or a list of them, got {status!r}")
    for key in ("name", "queue"):
        if key in filters and not isinstance(filters[key], str):
            abort(400, f"{key} must be a string, got {filters[key]!r}")
    for key in ("created_after", "created_before", "older_than"):
        value = filters.get(key)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            abort(400, f"{key} must be a number of seconds, got {value!r}")
    if "args" in filters and not isinstance(filters["args"], dict):
        abort(400, f"args must be an object of argument names to values, got {filters['args']!r}")
    return filters


def _number(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        abort(400, f"{key} must be a number of seconds, got {text!r}")
    return value


def _scalar(text: str) -> Any:
    """``text`` read as a JSON scalar, or the text itself when it is not JSON."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, (dict, list)):
        abort(400, f"an arg value must be a JSON string, number, true, false or null: {text!r}")
    return value
