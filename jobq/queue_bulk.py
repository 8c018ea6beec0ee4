"""Finding jobs by a filter and acting on all of them at once: the
:meth:`~QueueBulk.find`, :meth:`~QueueBulk.count`, :meth:`~QueueBulk.retry_all`,
:meth:`~QueueBulk.cancel_all` and :meth:`~QueueBulk.delete_all` methods of
:class:`~jobq.DurableQueue`.

Every method takes the same filter keywords (all optional, every one given must
hold): ``status``, ``name``, ``queue``, ``created_after``, ``created_before``,
``older_than`` and ``args``; :meth:`QueueBulk.job_filter` turns them into the
storage's :class:`~jobq.storage.bulk.JobFilter`. The bulk actions refuse to run
without any filter, so that nobody empties a queue by a slip.

:class:`QueueBulk` is a base class of ``DurableQueue`` and works through the few
queue members it declares. Rule: it imports basic values and the storage
contract, never the queue module itself.
"""

from __future__ import annotations

import builtins
import inspect
import math
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from .clock import EpochClock
from .job import Job, JobStatus
from .storage.base import Storage
from .storage.bulk import BulkResult, JobFilter, JSONScalar, PayloadMatch

Moment = float | int | datetime
"""A point in time: epoch seconds, or an aware :class:`~datetime.datetime`."""
Span = float | int | timedelta
"""A length of time: seconds, or a :class:`~datetime.timedelta`."""

NO_FILTER = "give at least one filter; to act on every job pass status=..."
"""The message of the ValueError a bulk action without any filter raises."""

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def epoch(label: str, value: Moment) -> float:
    """``value`` as epoch seconds; ValueError for a naive datetime or a bad number."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"{label} must be an aware datetime (e.g. datetime.now(timezone.utc)), "
                f"got the naive {value!r}"
            )
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{label} must be epoch seconds or an aware datetime, got {value!r}")
    return float(value)


def seconds(label: str, value: Span) -> float:
    """``value`` as seconds >= 0; ValueError otherwise."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{label} must be seconds >= 0 or a timedelta, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{label} must be a finite number of seconds, got {value!r}")
    return float(value)


def positions(function: Callable[..., Any] | None) -> dict[str, int]:
    """The positional parameters of ``function`` by name, with their index."""
    if function is None:
        return {}
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: i for i, p in enumerate(parameters) if p.kind in _POSITIONAL}


class QueueBulk:
    """Filters and bulk actions on a queue's storage (see the module docstring)."""

    storage: Storage
    clock: EpochClock
    tasks: dict[str, Any]

    def _wake(self, queue_name: str) -> None:
        """Tell this process's pools that jobs of ``queue_name`` may be runnable."""

    def job_filter(
        self,
        *,
        status: JobStatus | str | Collection[JobStatus | str] | None = None,
        name: str | None = None,
        queue: str | None = None,
        created_after: Moment | None = None,
        created_before: Moment | None = None,
        older_than: Span | None = None,
        args: Mapping[str, JSONScalar] | None = None,
    ) -> JobFilter:
        """The :class:`~jobq.JobFilter` the other methods of this group use.

        :param status: one status (a :class:`~jobq.JobStatus` or its name, e.g.
            ``"failed"``) or several; None (default) for any.
        :param name: the task name, or None for any task.
        :param queue: the queue name, or None for any queue.
        :param created_after: only jobs created at or after this moment (epoch
            seconds or an aware datetime).
        :param created_before: only jobs created before this moment.
        :param older_than: only jobs unchanged for at least this long (seconds
            or a timedelta): their last change is before now minus it.
        :param args: argument values the jobs must have, as ``{"user_id": 42}``:
            each key matches the keyword argument of that name, and, when
            ``name`` is a task registered with this queue, also the positional
            argument at that parameter's place. Values are JSON scalars (str,
            int, float, bool, None) and types must agree: ``42`` never matches
            ``"42"``. Argument matches are checked row by row, so pair them with
            a status or task on a large table.

        Raises ValueError naming the bad value.
        """
        statuses: Collection[JobStatus | str]
        if status is None:
            statuses = ()
        elif isinstance(status, (str, JobStatus)):
            statuses = (status,)
        else:
            statuses = status
        matches: builtins.list[PayloadMatch] = []
        if args:
            if not isinstance(args, Mapping):
                raise ValueError(f"args must be a mapping of names to values, got {args!r}")
            task = self.tasks.get(name) if name is not None else None
            places = positions(getattr(task, "fn", None))
            for key, value in args.items():
                matches.append(PayloadMatch(key, value, places.get(key)))
        return JobFilter(
            cast(Any, frozenset(statuses)),  # JobFilter checks and converts them
            queue,
            name,
            None if created_after is None else epoch("created_after", created_after),
            None if created_before is None else epoch("created_before", created_before),
            None if older_than is None else self.clock.now() - seconds("older_than", older_than),
            tuple(matches),
        )

    def find(
        self,
        *,
        filter: JobFilter | None = None,
        status: JobStatus | str | Collection[JobStatus | str] | None = None,
        name: str | None = None,
        queue: str | None = None,
        created_after: Moment | None = None,
        created_before: Moment | None = None,
        older_than: Span | None = None,
        args: Mapping[str, JSONScalar] | None = None,
        after: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> builtins.list[Job]:
        """Jobs matching every filter given, at most ``limit`` (1 to 10,000), by id.

        The filters are those of :meth:`job_filter` (``status``, ``name``,
        ``queue``, ``created_after``, ``created_before``, ``older_than``,
        ``args``); with none, every job.

        :param filter: a :class:`~jobq.JobFilter` (e.g. from :meth:`job_filter`)
            instead of the filter keywords; not both.
        :param after: the last id of the previous page, for the next page (None:
            the first page).
        :param limit: most jobs returned, 1 to 10,000 (default 100).
        :param newest_first: ids going down (newest first) instead of up; then
            ``after`` means "below this id".
        """
        chosen = self._resolve(
            filter,
            {
                "status": status,
                "name": name,
                "queue": queue,
                "created_after": created_after,
                "created_before": created_before,
                "older_than": older_than,
                "args": args,
            },
        )
        return self.storage.find_jobs(
            chosen, after_id=after, limit=limit, newest_first=newest_first
        )

    def count(
        self,
        *,
        filter: JobFilter | None = None,
        status: JobStatus | str | Collection[JobStatus | str] | None = None,
        name: str | None = None,
        queue: str | None = None,
        created_after: Moment | None = None,
        created_before: Moment | None = None,
        older_than: Span | None = None,
        args: Mapping[str, JSONScalar] | None = None,
    ) -> int:
        """How many jobs match every filter given (those of :meth:`job_filter`:
        ``status``, ``name``, ``queue``, ``created_after``, ``created_before``,
        ``older_than``, ``args``); with none, every job. For counts per queue and
        status, :meth:`stats` is cheaper: it reads kept counters.

        :param filter: a :class:`~jobq.JobFilter` (e.g. from :meth:`job_filter`)
            instead of the filter keywords; not both.
        """
        chosen = self._resolve(
            filter,
            {
                "status": status,
                "name": name,
                "queue": queue,
                "created_after": created_after,
                "created_before": created_before,
                "older_than": older_than,
                "args": args,
            },
        )
        return self.storage.count_jobs(chosen)

    def _resolve(self, given: JobFilter | None, filters: dict[str, Any]) -> JobFilter:
        """``given``, or the filter the keywords describe; not both."""
        if given is None:
            return self.job_filter(**filters)
        if not isinstance(given, JobFilter):
            raise TypeError(f"filter must be a JobFilter (see job_filter()), got {given!r}")
        if any(value is not None for value in filters.values()):
            raise ValueError("give either filter= or the filter keywords, not both")
        return given

    def _bulk_filter(self, given: JobFilter | None, filters: dict[str, Any]) -> JobFilter:
        chosen = self._resolve(given, filters)
        if chosen.is_empty:
            raise ValueError(NO_FILTER)
        return chosen

    def retry_all(
        self,
        *,
        filter: JobFilter | None = None,
        status: JobStatus | str | Collection[JobStatus | str] | None = None,
        name: str | None = None,
        queue: str | None = None,
        created_after: Moment | None = None,
        created_before: Moment | None = None,
        older_than: Span | None = None,
        args: Mapping[str, JSONScalar] | None = None,
    ) -> BulkResult:
        """Run again every failed or cancelled job matching the filters (those of
        :meth:`job_filter`: ``status``, ``name``, ``queue``, ``created_after``,
        ``created_before``, ``older_than``, ``args``), as :meth:`retry` does: back
        to pending now, with their full attempts. Jobs of other statuses are left
        alone. A job whose unique key is held by a live job of its task is left
        failed and counted in ``skipped``.

        Works in transactions of 1,000 jobs, so workers are not held up; wakes
        this process's workers. Returns :class:`~jobq.BulkResult`
        ``(changed, skipped)``. Raises ValueError when no filter is given (pass
        ``status="failed"`` to retry every failed job).

        :param filter: a :class:`~jobq.JobFilter` (e.g. from :meth:`job_filter`)
            instead of the filter keywords; not both.
        """
        chosen = self._bulk_filter(
            filter,
            {
                "status": status,
                "name": name,
                "queue": queue,
                "created_after": created_after,
                "created_before": created_before,
                "older_than": older_than,
                "args": args,
            },
        )
        result = self.storage.retry_matching(chosen, now=self.clock.now())
        if result.changed:
            if chosen.queue is not None:
                self._wake(chosen.queue)
            else:
                for queue_name in self.storage.stats(now=self.clock.now()).queues:
                    self._wake(queue_name)
        return result

    def cancel_all(
        self,
        *,
        filter: JobFilter | None = None,
        status: JobStatus | str | Collection[JobStatus | str] | None = None,
        name: str | None = None,
        queue: str | None = None,
        created_after: Moment | None = None,
        created_before: Moment | None = None,
        older_than: Span | None = None,
        args: Mapping[str, JSONScalar] | None = None,
    ) -> BulkResult:
        """Cancel every pending or processing job matching the filters (those of
        :meth:`job_filter`: ``status``, ``name``, ``queue``, ``created_after``,
        ``created_before``, ``older_than``, ``args``), as :meth:`cancel` does:
        pending ones at once, processing ones are asked to stop. Final jobs are
        left alone.

        Works in transactions of 1,000 jobs. Returns :class:`~jobq.BulkResult`
        (``changed``: jobs cancelled or asked to stop). Raises ValueError when no
        filter is given (pass ``status="pending"`` to cancel every pending job).

        :param filter: a :class:`~jobq.JobFilter` (e.g. from :meth:`job_filter`)
            instead of the filter keywords; not both.
        """
        chosen = self._bulk_filter(
            filter,
            {
                "status": status,
                "name": name,
                "queue": queue,
                "created_after": created_after,
                "created_before": created_before,
                "older_than": older_than,
                "args": args,
            },
        )
        return self.storage.cancel_matching(chosen, now=self.clock.now())

    def delete_all(
        self,
        *,
        filter: JobFilter | None = None,
        status: JobStatus | str | Collection[JobStatus | str] | None = None,
        name: str | None = None,
        queue: str | None = None,
        created_after: Moment | None = None,
        created_before: Moment | None = None,
        older_than: Span | None = None,
        args: Mapping[str, JSONScalar] | None = None,
    ) -> BulkResult:
        """Delete every pending, completed, failed or cancelled job matching the
        filters (those of :meth:`job_filter`: ``status``, ``name``, ``queue``,
        ``created_after``, ``created_before``, ``older_than``, ``args``), with its
        log lines. Processing jobs are never deleted (cancel them first): those
        matching are counted in ``skipped``.

        Works in transactions of 1,000 jobs. Returns :class:`~jobq.BulkResult`
        ``(changed, skipped)``. Raises ValueError when no filter is given (pass
        ``status="failed"`` to delete every failed job).

        :param filter: a :class:`~jobq.JobFilter` (e.g. from :meth:`job_filter`)
            instead of the filter keywords; not both.
        """
        chosen = self._bulk_filter(
            filter,
            {
                "status": status,
                "name": name,
                "queue": queue,
                "created_after": created_after,
                "created_before": created_before,
                "older_than": older_than,
                "args": args,
            },
        )
        return self.storage.delete_matching(chosen, now=self.clock.now())
