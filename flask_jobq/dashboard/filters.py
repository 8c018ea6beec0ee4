"""The jobs page's filters: read from a query string or a form, checked, and written
back into links and hidden fields.

One :class:`JobQuery` serves the jobs page, the bulk confirmation page and the bulk
action itself, so the jobs a confirmation counts are the jobs the action touches.

Rule: reads the request's values and :mod:`jobq`'s filter; never the queue's data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from flask import abort

from jobq.job import JobStatus

STATUSES = tuple(status.value for status in JobStatus)
"""Every job status, in the order the pages show them."""

PAGE_SIZES = (20, 50, 100, 200)
"""Page sizes the jobs page offers; the first is its default."""

_MAX_ID = 2**63 - 1
_TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


@dataclass(frozen=True)
class JobQuery:
    """Which jobs, in which order, which page.

    ``args`` are ``KEY=VALUE`` texts (the value read as JSON, else as text, as
    ``jobq retry --arg`` reads it); ``created_after`` and ``created_before`` are UTC
    times as an HTML ``datetime-local`` field sends them (``2026-12-02T14:05``).
    """

    status: str | None = None
    name: str | None = None
    queue: str | None = None
    args: tuple[str, ...] = ()
    created_after: str | None = None
    created_before: str | None = None
    newest_first: bool = True
    limit: int = PAGE_SIZES[0]
    after: int | None = None
    before: int | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)

    @property
    def narrows(self) -> bool:
        """True when any filter is given (bulk actions need one)."""
        return bool(
            self.status
            or self.name
            or self.queue
            or self.args
            or self.created_after
            or self.created_before
        )

    def filters(self) -> dict[str, Any]:
        """The keywords of ``DurableQueue.find``/``count``/``retry_all``... for this query."""
        chosen: dict[str, Any] = {
            "status": self.status,
            "name": self.name,
            "queue": self.queue,
            "created_after": _epoch(self.created_after),
            "created_before": _epoch(self.created_before),
            "args": dict(self.arguments) or None,
        }
        return chosen

    def query(self) -> dict[str, Any]:
        """The filter as query-string values (cursors and defaults left out); a list
        for the repeated ``arg``."""
        values: dict[str, Any] = {
            "status": self.status,
            "task": self.name,
            "queue": self.queue,
            "created_after": self.created_after,
            "created_before": self.created_before,
        }
        shown: dict[str, Any] = {key: value for key, value in values.items() if value}
        if self.args:
            shown["arg"] = list(self.args)
        if not self.newest_first:
            shown["sort"] = "oldest"
        if self.limit != PAGE_SIZES[0]:
            shown["limit"] = str(self.limit)
        return shown

    def described(self) -> str:
        """The filter in words, for the confirmation page."""
        parts = []
        if self.status:
            parts.append(f"status {self.status}")
        if self.name:
            parts.append(f"task {self.name}")
        if self.queue:
            parts.append(f"queue {self.queue}")
        parts.extend(f"argument {text}" for text in self.args)
        if self.created_after:
            parts.append(f"created at or after {self.created_after.replace('T', ' ')} UTC")
        if self.created_before:
            parts.append(f"created before {self.created_before.replace('T', ' ')} UTC")
        return ", ".join(parts) or "every job"


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    for pattern in _TIME_FORMATS:
        try:
            moment = datetime.strptime(text, pattern)
        except ValueError:
            continue
        return moment.replace(tzinfo=timezone.utc).timestamp()
    abort(400, f"a time must be written 2026-12-02T14:05 (UTC), got {text[:50]!r}")
    return None  # abort raised


def parse_argument(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as ``(key, value)``: the value read as a JSON scalar, else as
    text. Aborts 400 for anything else."""
    key, equals, raw = text.partition("=")
    key = key.strip()
    if not equals or not key.isidentifier():
        abort(400, f"an argument filter must be KEY=VALUE, e.g. user_id=42; got {text[:80]!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        return key, raw
    if isinstance(value, (dict, list)):
        abort(400, f"the value of {key} must be a JSON string, number, true, false or null")
    return key, value


def _id(values: Mapping[str, str], name: str) -> int | None:
    text = values.get(name) or None
    if text is None:
        return None
    if not text.isdigit() or int(text) > _MAX_ID:
        abort(400, f"{name} must be a job id, got {text[:50]!r}")
    return int(text)


def read_query(values: Any) -> JobQuery:
    """The :class:`JobQuery` of a request's ``args`` or ``form`` (a MultiDict).
    Aborts 400 naming a bad value."""
    status = values.get("status") or None
    if status is not None and status not in STATUSES:
        abort(400, f"status must be one of {', '.join(STATUSES)}, got {status[:50]!r}")
    sort = values.get("sort") or "newest"
    if sort not in ("newest", "oldest"):
        abort(400, f"sort must be newest or oldest, got {sort[:50]!r}")
    limit_text = values.get("limit") or str(PAGE_SIZES[0])
    if not limit_text.isdigit() or int(limit_text) not in PAGE_SIZES:
        abort(400, f"limit must be one of {PAGE_SIZES}, got {limit_text[:50]!r}")
    texts = tuple(text.strip() for text in values.getlist("arg") if text.strip())
    arguments = dict(parse_argument(text) for text in texts)
    for name in ("task", "queue"):
        if "\x00" in (values.get(name) or ""):
            abort(400, f"{name} cannot contain a NUL character")
    query = JobQuery(
        status=status,
        name=values.get("task") or None,
        queue=values.get("queue") or None,
        args=texts,
        created_after=values.get("created_after") or None,
        created_before=values.get("created_before") or None,
        newest_first=sort == "newest",
        limit=int(limit_text),
        after=_id(values, "after"),
        before=_id(values, "before"),
        arguments=arguments,
    )
    query.filters()  # the times are checked now
    return query
