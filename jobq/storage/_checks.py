"""Argument checks shared by storage backends (bad input is rejected before any
write), and lease token generation.

Every backend accepts the same jobs: a priority or attempt count is held to the
narrowest column among the backends (PostgreSQL's ``integer``), so a job SQLite
accepts is never one PostgreSQL refuses, and a Python int too large for its
column never reaches a driver as a raw OverflowError.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Collection

from ..validate import check_int_range, check_time
from .base import JobStatus, NewJob

PRIORITY_RANGE = (-(2**31), 2**31 - 1)
"""Lowest and highest job priority: PostgreSQL's ``integer`` column."""
MAX_ATTEMPTS_RANGE = (1, 2**31 - 1)
"""Fewest and most attempts a job may be given: PostgreSQL's ``integer`` column."""
ROW_COUNT_MAX = 2**63 - 1
"""Largest batch size or row count passed to a backend: a 64-bit SQL integer."""


def new_tokens(count: int) -> list[str]:
    """``count`` random lease tokens of 32 hex digits (one system call for all)."""
    digits = secrets.token_hex(16 * count)
    return [digits[i : i + 32] for i in range(0, 32 * count, 32)]


def check_new(job: NewJob, index: int | None) -> None:
    """Reject a bad NewJob before anything is written, naming the field and value."""
    name, payload, queue, priority, max_attempts, run_at, unique_key = job
    # One cheap test for the common, valid case; the detailed checks only on failure.
    if (
        type(payload) is str
        and type(name) is str
        and type(queue) is str
        and type(priority) is int
        and -(2**31) <= priority <= 2**31 - 1  # PRIORITY_RANGE, folded by the compiler
        and type(max_attempts) is int
        and 1 <= max_attempts <= 2**31 - 1  # MAX_ATTEMPTS_RANGE
        and name
        and queue
        and (run_at is None or (type(run_at) is float and math.isfinite(run_at)))
        and (unique_key is None or type(unique_key) is str)
        and "\x00" not in name + queue + payload + (unique_key or "")
    ):
        return
    where = "" if index is None else f" (jobs[{index}])"
    if not isinstance(payload, str):
        raise TypeError(
            f"payload must be JSON text (a str) encoded by the caller, got "
            f"{type(payload).__name__}{where}; encode it first, e.g. json.dumps(...)"
        )
    for field, value in (("name", name), ("queue", queue)):
        if not isinstance(value, str) or not value or "\x00" in value:
            raise ValueError(f"{field} must be a non-empty str without NUL, got {value!r}{where}")
    for field, text in (("payload", payload), ("unique_key", unique_key or "")):
        if "\x00" in text:  # PostgreSQL text cannot hold it; JSON escapes it anyway
            raise ValueError(f"{field} must not contain a NUL character{where}")
    check_int_range("priority", priority, PRIORITY_RANGE, where)
    check_int_range("max_attempts", max_attempts, MAX_ATTEMPTS_RANGE, where)
    if run_at is not None:
        check_time("run_at", run_at)
    if unique_key is not None and not isinstance(unique_key, str):
        raise ValueError(f"unique_key must be a str or None, got {unique_key!r}{where}")


def check_json(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be JSON text (a str) encoded by the caller, got "
            f"{type(value).__name__}; encode it first, e.g. json.dumps(...)"
        )


def check_queues(queues: Collection[str]) -> list[str]:
    if isinstance(queues, str):
        raise TypeError(f"queues must be a collection of queue names, not a str: [{queues!r}]?")
    names = list(dict.fromkeys(queues))
    for name in names:
        if not isinstance(name, str) or not name or "\x00" in name:
            raise ValueError(f"a queue name must be a non-empty str without NUL, got {name!r}")
    return names


_FINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


def check_purge(
    older_than: float, statuses: Collection[JobStatus], batch_size: int
) -> list[JobStatus]:
    """The statuses :meth:`~jobq.storage.base.Storage.purge` deletes, checked."""
    check_time("older_than", older_than)
    chosen = sorted({JobStatus(s) for s in statuses})
    if not set(chosen) <= _FINAL:
        raise ValueError(
            f"purge deletes only completed, failed or cancelled jobs, got {statuses!r}; "
            "cancel pending jobs first"
        )
    check_int_range("batch_size", batch_size, (1, ROW_COUNT_MAX))
    return chosen


def check_list_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise ValueError(f"limit must be an integer from 1 to 10000, got {limit!r}")
