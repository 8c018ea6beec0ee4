"""Argument checks of the storage contract, which
:class:`~jobq.storage.checked.CheckedStorage` runs once for every backend (bad
input is rejected before anything is read or written), and lease token generation.

Every backend accepts the same jobs: a priority or attempt count is held to the
narrowest column among the backends (PostgreSQL's ``integer``), so a job SQLite
accepts is never one PostgreSQL refuses, and a Python int too large for its
column never reaches a driver as a raw OverflowError.

Rule: imports only basic values (:mod:`jobq.validate`) and the storage contract,
never a backend.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Collection, Mapping

from ..unique import ON_DUPLICATE
from ..validate import check_int_range, check_time, is_int, is_number
from ._limits import rate_windows
from .base import JobStatus, NewJob, TaskLimit

_VALID_POLICIES = frozenset({("keep", True, True), ("keep", False, True), ("replace", False, True)})
"""(on_duplicate, unique_key is None, throttle is None) of the plain valid jobs."""
PRIORITY_RANGE = (-(2**31), 2**31 - 1)
"""Lowest and highest job priority: PostgreSQL's ``integer`` column."""
MAX_ATTEMPTS_RANGE = (1, 2**31 - 1)
"""Fewest and most attempts a job may be given: PostgreSQL's ``integer`` column."""
ROW_COUNT_MAX = 2**63 - 1
"""Largest batch size or row count passed to a backend: a 64-bit SQL integer."""
CLAIM_LIMIT_RANGE = (1, 1000)
"""Fewest and most jobs one claim may take."""
LIST_LIMIT_RANGE = (1, 10_000)
"""Fewest and most jobs one listing may return."""


def new_tokens(count: int) -> list[str]:
    """``count`` random lease tokens of 32 hex digits (one system call for all)."""
    digits = secrets.token_hex(16 * count)
    return [digits[i : i + 32] for i in range(0, 32 * count, 32)]


def _check_texts(job: NewJob, where: str) -> None:
    """The text fields of a job: payload a str, names non-empty, no NUL anywhere."""
    if not isinstance(job.payload, str):
        raise TypeError(
            f"payload must be JSON text (a str) encoded by the caller, got "
            f"{type(job.payload).__name__}{where}; encode it first, e.g. json.dumps(...)"
        )
    for field, value in (("name", job.name), ("queue", job.queue)):
        if not isinstance(value, str) or not value or "\x00" in value:
            raise ValueError(f"{field} must be a non-empty str without NUL, got {value!r}{where}")
    for field, text in (("payload", job.payload), ("unique_key", job.unique_key or "")):
        if "\x00" in text:  # PostgreSQL text cannot hold it; JSON escapes it anyway
            raise ValueError(f"{field} must not contain a NUL character{where}")


def _no_or_finite_time(value: object) -> bool:
    return value is None or (type(value) is float and math.isfinite(value))


LIMIT_KEY_MAX = 200
"""Most characters in a job's ``limit_key``."""
_CONTROL = frozenset(map(chr, range(32))) | {"\x7f"}


def is_limit_key(value: object) -> bool:
    """True for a valid ``limit_key``: a non-empty str of at most :data:`LIMIT_KEY_MAX`
    characters without control characters (keys are shown in terminals and logs)."""
    return type(value) is str and 0 < len(value) <= LIMIT_KEY_MAX and _CONTROL.isdisjoint(value)


def check_new(job: NewJob, index: int | None) -> None:
    """Reject a bad NewJob before anything is written, naming the field and value
    (and ``jobs[index]`` when ``index`` is given)."""
    (name, payload, queue, priority, max_attempts, run_at, unique_key, expires_at, limit_key) = job[
        :9
    ]
    policy = (job.on_duplicate, unique_key is None, job.throttle is None)
    # One cheap test for the common, valid case (every enqueue runs it); the
    # detailed checks, which say what is wrong, only on failure.
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
        and _no_or_finite_time(run_at)
        and (unique_key is None or type(unique_key) is str)
        and _no_or_finite_time(expires_at)
        and "\x00" not in name + queue + payload + (unique_key or "")
        and (limit_key is None or is_limit_key(limit_key))
        and policy in _VALID_POLICIES
    ):
        return
    _reject_new(job, "" if index is None else f" (jobs[{index}])")


def _reject_new(job: NewJob, where: str) -> None:
    """Raise the error that says what is wrong with ``job`` (``where`` ends each message)."""
    _check_texts(job, where)
    check_int_range("priority", job.priority, PRIORITY_RANGE, where)
    check_int_range("max_attempts", job.max_attempts, MAX_ATTEMPTS_RANGE, where)
    if job.run_at is not None:
        check_time("run_at", job.run_at)
    if job.unique_key is not None and not isinstance(job.unique_key, str):
        raise ValueError(f"unique_key must be a str or None, got {job.unique_key!r}{where}")
    if job.expires_at is not None:
        check_time("expires_at", job.expires_at)
    if job.limit_key is not None and not is_limit_key(job.limit_key):
        raise ValueError(
            f"limit_key must be None or a non-empty str of at most {LIMIT_KEY_MAX} characters "
            f"without control characters, got {job.limit_key!r}{where}"
        )
    if job.on_duplicate not in ON_DUPLICATE:
        raise ValueError(
            f"on_duplicate must be one of {', '.join(map(repr, ON_DUPLICATE))}, "
            f"got {job.on_duplicate!r}{where}"
        )
    if job.on_duplicate != "keep" and job.unique_key is None:
        raise ValueError(f"on_duplicate={job.on_duplicate!r} needs a unique_key{where}")
    if job.throttle is not None:
        _check_throttle(job, where)


def _check_throttle(job: NewJob, where: str) -> None:
    throttle = job.throttle
    if not is_number(throttle) or not 0 < throttle < math.inf:  # type: ignore[operator]
        raise ValueError(f"throttle must be a number of seconds > 0, got {throttle!r}{where}")
    if job.unique_key is None or job.on_duplicate != "keep":
        raise ValueError(f'throttle needs a unique_key and on_duplicate="keep"{where}')


def check_json(name: str, value: object) -> None:
    """Raise TypeError unless ``value`` is JSON text (a ``str``)."""
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be JSON text (a str) encoded by the caller, got "
            f"{type(value).__name__}; encode it first, e.g. json.dumps(...)"
        )


def check_queues(queues: Collection[str]) -> list[str]:
    """The queue names, each once in the order given; TypeError for a lone str."""
    if isinstance(queues, str):
        raise TypeError(f"queues must be a collection of queue names, not a str: [{queues!r}]?")
    names = list(dict.fromkeys(queues))
    for name in names:
        if not isinstance(name, str) or not name or "\x00" in name:
            raise ValueError(f"a queue name must be a non-empty str without NUL, got {name!r}")
    return names


def check_limits(limits: Mapping[str, TaskLimit], at_most: int | None) -> None:
    """Reject malformed task limits before anything is read or written."""
    for name, limit in limits.items():
        if not isinstance(limit, TaskLimit):
            raise TypeError(f"limits[{name!r}] must be a TaskLimit, got {limit!r}")
        for field, value in (("concurrency", limit.concurrency), ("rate", limit.rate)):
            if value is not None and (not is_int(value) or value < 1):
                raise ValueError(f"limits[{name!r}].{field} must be an integer >= 1, got {value!r}")
        if not (isinstance(limit.per, (int, float)) and 0 < limit.per < math.inf):
            raise ValueError(f"limits[{name!r}].per must be seconds > 0, got {limit.per!r}")
        if not isinstance(limit.per_key, bool):
            raise ValueError(f"limits[{name!r}].per_key must be a bool, got {limit.per_key!r}")
    if at_most is not None and (not is_int(at_most) or at_most < 0):
        raise ValueError(f"limited_at_most must be an integer >= 0 or None, got {at_most!r}")
    rate_windows(limits)  # tasks sharing a rate key must agree on it


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


def check_schedule_name(name: str) -> None:
    """Raise ValueError unless ``name`` is a non-empty str."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a schedule name must be a non-empty str, got {name!r}")


def is_job_id(value: object) -> bool:
    """True for an int that a 64-bit id column can hold and that may name a job."""
    return is_int(value) and 0 < value < 2**63  # type: ignore[operator]
