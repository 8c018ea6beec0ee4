"""A task's ``limit_key``: which group of its jobs a per-key limit counts a job in
(one account, one tenant), computed from the job's arguments when it is enqueued
and stored on the job, so that claims never decode payloads.

``limit_key`` is either a callable receiving the call's arguments as the task
function would (``lambda account_id, **_: account_id``), or the name of one of
the function's parameters (``"account_id"``), whose value (default filled in) is
the key. The key is a non-empty ``str`` (an ``int`` is turned into one) or None:
jobs whose key is None share one group of their own.

Rule: imports basic values and the storage contract's checks only;
:mod:`jobq.task_options` and :mod:`jobq.tasks` build on it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .storage._checks import LIMIT_KEY_MAX, is_limit_key

LimitKey = str | Callable[..., Any]
"""A task's ``limit_key=``: a parameter name, or a callable of the task's arguments."""


def check_option(limit_key: object, concurrency_limit: object, rate_limit: object) -> None:
    """Raise TypeError or ValueError for a ``limit_key=`` that cannot work."""
    if limit_key is None:
        return
    if not (callable(limit_key) or (isinstance(limit_key, str) and limit_key)):
        raise TypeError(
            "limit_key must be a callable receiving the task's arguments or the name of one "
            f"of its parameters, got {limit_key!r}"
        )
    if concurrency_limit is None and rate_limit is None:
        raise ValueError(
            "limit_key needs a concurrency_limit or a rate_limit to apply per key, e.g. "
            "concurrency_limit=1 for one job at a time per key"
        )


def check_parameter(task_name: str, limit_key: LimitKey, signature: inspect.Signature) -> None:
    """Raise ValueError when a ``limit_key`` naming a parameter names none of ``signature``."""
    if not isinstance(limit_key, str):
        return
    parameter = signature.parameters.get(limit_key)
    if parameter is None or parameter.kind in (
        inspect.Parameter.VAR_POSITIONAL,
        inspect.Parameter.VAR_KEYWORD,
    ):
        named = ", ".join(
            p.name
            for p in signature.parameters.values()
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        )
        raise ValueError(
            f"limit_key={limit_key!r} of task {task_name} names none of its parameters "
            f"({named or 'it has none'}); name one, or give a callable"
        )


def key_of(
    task_name: str,
    limit_key: LimitKey,
    signature: inspect.Signature,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
) -> str | None:
    """The limit key of a call whose arguments fit ``signature`` (checked already).

    Raises ValueError when the callable raises or returns a str that cannot be a
    key, TypeError when it returns neither str, int nor None."""
    if isinstance(limit_key, str):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        value = bound.arguments[limit_key]
    else:
        try:
            value = limit_key(*args, **kwargs)
        except Exception as exc:
            raise ValueError(
                f"cannot enqueue {task_name}: its limit_key raised {type(exc).__name__}: {exc}"
            ) from exc
    return _as_key(task_name, value)


def _as_key(task_name: str, value: object) -> str | None:
    if value is None:
        return None
    if type(value) is int:
        value = str(value)
    if not isinstance(value, str):
        raise TypeError(
            f"cannot enqueue {task_name}: its limit_key gave {value!r} "
            f"({type(value).__name__}); it must give a str, an int or None"
        )
    if not is_limit_key(value):
        raise ValueError(
            f"cannot enqueue {task_name}: its limit_key gave {value!r}; a key is a non-empty "
            f"str of at most {LIMIT_KEY_MAX} characters without control characters"
        )
    return value
