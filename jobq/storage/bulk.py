"""Finding jobs by a filter, counting them, and acting on every match at once:
the storage side of :meth:`jobq.DurableQueue.find` and ``retry_all``,
``cancel_all``, ``delete_all``.

A :class:`JobFilter` says which jobs: statuses, queue, task name, a creation
time range, "not updated since", and :class:`PayloadMatch` terms on the job's
arguments (``payload.kwargs[key] == value``, or ``payload.args[position] ==
value``). A page is read in id order. A status reads its index (completed,
failed and cancelled jobs the finished-jobs index; a few pending or processing
jobs their partial index); queue, task, times and payload matches are checked
row by row, walking the ids until the page is full: quick when the matches are
common, a scan of the table when they are rare or absent (measured at
1,000,000 jobs: about 130 ms on SQLite and 230 ms on PostgreSQL for a task with
no jobs; payload matches, which parse each row's JSON, about 0.1 to 0.8 s). So
on a large table give a status with the other filters. :meth:`count_jobs`
reads every match.

Bulk actions run in transactions of at most ``batch_size`` rows (1,000 by
default), walking the matches in id order, so workers' claims and completions
are never held up for long; the counts kept per queue and status stay right
(the backends' triggers keep them). A bulk action is therefore not atomic: a
job that starts matching while it runs may or may not be acted on.

:class:`BulkStorage` is this piece of the storage contract; :class:`CheckedBulk`
checks its arguments once, above every backend, and hands them to the
backend's :class:`BulkStore` part, which only runs SQL.

Rule: imports basic values only (``job``, ``validate``); the storage contract
(:mod:`jobq.storage.base`) imports this module, not the reverse.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from ..job import Job, JobStatus
from ..validate import check_int_range, check_time, is_int

JSONScalar = str | int | float | bool | None
"""A value a :class:`PayloadMatch` compares with: a JSON string, number, true,
false or null."""

BULK_BATCH = 1000
"""Rows changed per transaction by a bulk action, by default."""
FIND_LIMIT_RANGE = (1, 10_000)
"""Fewest and most jobs one :meth:`BulkStorage.find_jobs` page may hold."""
BATCH_RANGE = (1, 100_000)
"""Smallest and largest ``batch_size`` of a bulk action."""
POSITION_RANGE = (0, 1000)
"""Positional argument indexes a :class:`PayloadMatch` may name."""

RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})
"""The statuses :meth:`BulkStorage.retry_matching` acts on."""
CANCELLABLE = frozenset({JobStatus.PENDING, JobStatus.PROCESSING})
"""The statuses :meth:`BulkStorage.cancel_matching` acts on."""
DELETABLE = frozenset(
    {JobStatus.PENDING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
)
"""The statuses :meth:`BulkStorage.delete_matching` acts on: never processing."""


@dataclass(frozen=True)
class PayloadMatch:
    """A job argument to match: ``payload.kwargs[key] == value``, or, when
    ``position`` is given, also ``payload.args[position] == value``.

    :param key: the keyword argument's name, a Python identifier.
    :param value: a JSON scalar: str, int, float, bool or None. Types must
        agree: ``42`` never matches ``"42"``, ``True`` never matches ``1``;
        numbers match by value (``42`` matches ``42.0``).
    :param position: the index (0 to 1000) of the positional argument that
        also counts, or None (default) for keyword arguments only.

    Raises ValueError for a key that is not an identifier, a value that is not
    a JSON scalar (or a float that is not finite), or a bad position.
    """

    key: str
    value: JSONScalar
    position: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key.isidentifier():
            raise ValueError(f"a payload key must be a Python identifier, got {self.key!r}")
        value = self.value
        if not (value is None or isinstance(value, (str, int, float, bool))):
            raise ValueError(
                f"the value of {self.key!r} must be a str, int, float, bool or None, "
                f"got {type(value).__name__}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"the value of {self.key!r} must be a finite number, got {value!r}")
        if isinstance(value, str) and "\x00" in value:
            raise ValueError(f"the value of {self.key!r} must not contain a NUL character")
        if self.position is not None:
            check_int_range("position", self.position, POSITION_RANGE, f" (of {self.key!r})")


@dataclass(frozen=True)
class JobFilter:
    """Which jobs: every filter given must hold (an empty filter matches all jobs).

    :param statuses: the statuses allowed, any collection of
        :class:`~jobq.JobStatus` or their names; empty (default) for any.
    :param queue: the queue name, or None for any.
    :param name: the task name, or None for any.
    :param created_after: only jobs created at or after this time (epoch seconds).
    :param created_before: only jobs created before this time (epoch seconds).
    :param updated_before: only jobs whose last change (``updated_at``) was
        before this time (epoch seconds): "older than".
    :param payload: :class:`PayloadMatch` terms, all of which must hold.

    Statuses read indexes; the other filters are checked row by row (see the
    module docstring: a rare task or payload value scans). Raises ValueError
    (naming the field) for a bad value.
    """

    statuses: frozenset[JobStatus] = field(default_factory=frozenset)
    queue: str | None = None
    name: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    updated_before: float | None = None
    payload: tuple[PayloadMatch, ...] = ()

    def __post_init__(self) -> None:
        statuses: Any = self.statuses
        if isinstance(statuses, (str, JobStatus)):
            statuses = [statuses]
        try:
            chosen = frozenset(JobStatus(status) for status in statuses)
        except (TypeError, ValueError):
            known = ", ".join(s.value for s in JobStatus)
            raise ValueError(f"statuses must be among {known}; got {self.statuses!r}") from None
        object.__setattr__(self, "statuses", chosen)
        for label in ("queue", "name"):
            value = getattr(self, label)
            if value is not None and (not isinstance(value, str) or not value or "\x00" in value):
                raise ValueError(f"{label} must be a non-empty str without NUL, got {value!r}")
        for label in ("created_after", "created_before", "updated_before"):
            value = getattr(self, label)
            if value is not None:
                check_time(label, value)
                object.__setattr__(self, label, float(value))
        matches = tuple(self.payload)
        for match in matches:
            if not isinstance(match, PayloadMatch):
                raise ValueError(f"payload must hold PayloadMatch terms, got {match!r}")
        object.__setattr__(self, "payload", matches)

    @property
    def is_empty(self) -> bool:
        """True when no filter is given: it matches every job."""
        return self == JobFilter()

    def narrowed(self, allowed: Collection[JobStatus]) -> JobFilter:
        """This filter with its statuses limited to ``allowed`` (all of them when it
        names none)."""
        chosen = frozenset(allowed) if not self.statuses else self.statuses & frozenset(allowed)
        return JobFilter(
            chosen,
            self.queue,
            self.name,
            self.created_after,
            self.created_before,
            self.updated_before,
            self.payload,
        )


class BulkResult(NamedTuple):
    """What a bulk action did: ``changed`` jobs acted on, and ``skipped`` jobs that
    matched the filter but were left alone (retry: their unique key is held by
    a live job of the same task; delete: they are processing)."""

    changed: int
    skipped: int = 0


class BulkStorage(Protocol):
    """The storage contract's piece for filters and bulk actions (part of
    :class:`~jobq.storage.base.Storage`)."""

    def find_jobs(
        self,
        filter: JobFilter,
        *,
        after_id: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[Job]:
        """Jobs matching ``filter``, at most ``limit`` (1 to 10,000), by id.

        Cursor pagination: pass the last id of a page as ``after_id`` to get the
        next; with ``newest_first`` ids go down and ``after_id`` means "below".
        Only statuses read an index; a rare task, queue, time range or payload value
        scans the table (see the module docstring).
        """
        ...

    def count_jobs(self, filter: JobFilter) -> int:
        """How many jobs match ``filter`` now. Counting reads every match (or every
        row, when only time or payload filters are given)."""
        ...

    def retry_matching(
        self, filter: JobFilter, *, now: float, batch_size: int = BULK_BATCH
    ) -> BulkResult:
        """:meth:`~jobq.storage.base.Storage.retry` every failed or cancelled job
        matching ``filter`` (other statuses in it are ignored): back to pending at
        ``now``, attempts reset to 0. A job whose unique key is held by a live job
        of its task (or by a job retried earlier in this call) is left as it is
        and counted in ``skipped``: the oldest of them is the one retried."""
        ...

    def cancel_matching(
        self, filter: JobFilter, *, now: float, batch_size: int = BULK_BATCH
    ) -> BulkResult:
        """:meth:`~jobq.storage.base.Storage.request_cancel` every pending or
        processing job matching ``filter``: pending ones end cancelled at once,
        processing ones are asked to stop. ``changed`` counts both; jobs already
        asked to stop are not counted again."""
        ...

    def delete_matching(
        self, filter: JobFilter, *, now: float, batch_size: int = BULK_BATCH
    ) -> BulkResult:
        """Delete every pending, completed, failed or cancelled job matching
        ``filter``, with its log lines. Processing jobs are never deleted (their
        worker still holds them: cancel them first); those matching are counted
        in ``skipped``."""
        ...


class BulkStore(Protocol):
    """What a backend provides for filters and bulk actions: SQL only, on checked
    values. Each action gets a filter already narrowed to the statuses it acts on."""

    def find(
        self, filter: JobFilter, after_id: int | None, limit: int, newest_first: bool
    ) -> list[Job]:
        """A page of matches by id."""
        ...

    def count(self, filter: JobFilter) -> int:
        """How many match."""
        ...

    def retry(self, filter: JobFilter, now: float, batch_size: int) -> BulkResult:
        """Retry the matches (failed or cancelled), in batches."""
        ...

    def cancel(self, filter: JobFilter, now: float, batch_size: int) -> BulkResult:
        """Cancel the matches (pending or processing), in batches."""
        ...

    def delete(self, filter: JobFilter, now: float, batch_size: int) -> BulkResult:
        """Delete the matches (never processing ones), in batches."""
        ...


def check_filter(value: object) -> JobFilter:
    """``value`` if it is a :class:`JobFilter`; TypeError otherwise."""
    if not isinstance(value, JobFilter):
        raise TypeError(f"filter must be a JobFilter, got {value!r}")
    return value


class CheckedBulk:
    """The filter and bulk methods of :class:`~jobq.storage.checked.CheckedStorage`:
    arguments checked here, SQL run by the backend's :attr:`_bulk` part."""

    _bulk: BulkStore

    def find_jobs(
        self,
        filter: JobFilter,
        *,
        after_id: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[Job]:
        check_filter(filter)
        check_int_range("limit", limit, FIND_LIMIT_RANGE)
        if after_id is not None and not is_int(after_id):
            raise ValueError(f"after_id must be an integer job id or None, got {after_id!r}")
        if after_id is not None and not 0 <= after_id < 2**63:
            # A cursor beyond every id: nothing past it, or everything.
            if (after_id < 0) == bool(newest_first):
                return []
            after_id = None
        statuses = filter.statuses
        if 1 < len(statuses) < len(JobStatus):
            # One page per status, each read off that status's index in id order, then
            # merged: a single query over several statuses would sort every match.
            pages = [
                self._bulk.find(filter.narrowed({s}), after_id, limit, bool(newest_first))
                for s in sorted(statuses)
            ]
            merged = heapq.merge(*pages, key=lambda job: job.id, reverse=bool(newest_first))
            return list(itertools.islice(merged, limit))
        return self._bulk.find(filter, after_id, limit, bool(newest_first))

    def count_jobs(self, filter: JobFilter) -> int:
        return self._bulk.count(check_filter(filter))

    def retry_matching(
        self, filter: JobFilter, *, now: float, batch_size: int = BULK_BATCH
    ) -> BulkResult:
        narrowed = _checked(filter, now, batch_size, RETRYABLE)
        return self._bulk.retry(narrowed, now, batch_size) if narrowed else BulkResult(0)

    def cancel_matching(
        self, filter: JobFilter, *, now: float, batch_size: int = BULK_BATCH
    ) -> BulkResult:
        narrowed = _checked(filter, now, batch_size, CANCELLABLE)
        return self._bulk.cancel(narrowed, now, batch_size) if narrowed else BulkResult(0)

    def delete_matching(
        self, filter: JobFilter, *, now: float, batch_size: int = BULK_BATCH
    ) -> BulkResult:
        narrowed = _checked(filter, now, batch_size, DELETABLE)
        skipped = 0
        if not filter.statuses or JobStatus.PROCESSING in filter.statuses:
            skipped = self._bulk.count(filter.narrowed({JobStatus.PROCESSING}))
        if narrowed is None:
            return BulkResult(0, skipped)
        return self._bulk.delete(narrowed, now, batch_size)._replace(skipped=skipped)


def _checked(
    filter: JobFilter, now: float, batch_size: int, allowed: frozenset[JobStatus]
) -> JobFilter | None:
    """The filter narrowed to ``allowed``, or None when no status is left."""
    check_filter(filter)
    check_time("now", now)
    check_int_range("batch_size", batch_size, BATCH_RANGE)
    narrowed = filter.narrowed(allowed)
    return narrowed if narrowed.statuses else None


def filter_terms(filter: JobFilter, mark: str, payload_term: Any) -> tuple[list[str], list[Any]]:
    """The WHERE terms and parameters of ``filter``, for the SQL backends: ``mark`` is
    the driver's placeholder (``?`` or ``%s``), ``payload_term(match)`` returns the
    backend's (term, parameters) for one :class:`PayloadMatch`."""
    terms: list[str] = []
    params: list[Any] = []
    statuses = sorted(status.value for status in filter.statuses)
    if len(statuses) == 1:
        terms.append(f"status = {mark}")
    elif statuses and len(statuses) < len(JobStatus):
        terms.append(f"status IN ({', '.join([mark] * len(statuses))})")
    else:
        statuses = []
    params.extend(statuses)
    if statuses and all(JobStatus(s) in RETRYABLE | {JobStatus.COMPLETED} for s in statuses):
        # Always true for final jobs; it lets the planner read the finished index.
        terms.append("finished_at IS NOT NULL")
    for column, value, op in (
        ("queue", filter.queue, "="),
        ("name", filter.name, "="),
        ("created_at", filter.created_after, ">="),
        ("created_at", filter.created_before, "<"),
        ("updated_at", filter.updated_before, "<"),
    ):
        if value is not None:
            terms.append(f"{column} {op} {mark}")
            params.append(value)
    for match in filter.payload:
        term, values = payload_term(match)
        terms.append(term)
        params.extend(values)
    return terms, params
