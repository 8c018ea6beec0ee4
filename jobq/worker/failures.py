"""Describing a failed attempt in words every backend can store, whatever failed.

A task may raise an exception whose ``__str__`` raises, return a value that
cannot be encoded, or declare a backoff that raises; none of that may escape
the worker that runs it. Everything here returns text or a number and never raises.

Rule: imports basic values and :mod:`jobq.backoff` only.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..backoff import Backoff
from ..job import JobError

TRACEBACK_LIMIT = 20_000
"""Characters of traceback kept on a failed job (the end of it)."""


def storable(text: str) -> str:
    """``text`` with what a database refuses escaped: NUL characters (PostgreSQL text)
    and lone surrogates (not UTF-8), written as ``\\x00`` and ``\\udc80``."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def describe(exc: BaseException) -> str:
    """``Type: message`` for an exception, even one whose ``__str__`` raises."""
    kind = type(exc).__qualname__
    message = _message_of(exc)
    return f"{kind}: {message}" if message else kind


def error_of(exc: BaseException, *, context: str = "") -> JobError:
    """The :class:`JobError` recorded for ``exc``: its type, its message (after
    ``context``, when given) and its traceback (the last ``TRACEBACK_LIMIT``
    characters)."""
    message = _message_of(exc)
    if context:
        message = f"{context}: {describe(exc)}"
    try:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:  # a traceback too deep to format, or a broken exception chain
        text = _frames_of(exc) + describe(exc) + "\n"
    if len(text) > TRACEBACK_LIMIT:
        text = "...\n" + text[-TRACEBACK_LIMIT:]
    return JobError(storable(type(exc).__qualname__), storable(message), storable(text))


def retry_delay(backoff: Backoff, attempt: int) -> tuple[float | None, str]:
    """Seconds before the attempt after ``attempt`` by a task's ``backoff``, or
    ``(None, why)`` when the backoff raises or does not return seconds >= 0."""
    try:
        delay = float(backoff(attempt))
    except Exception as exc:  # user code: its failure must end the job, not the worker
        return None, f"no retry, as the task's backoff raised {describe(exc)}"
    if not delay >= 0:
        return None, f"no retry, as the task's backoff returned {delay!r}, not seconds >= 0"
    return delay, ""


def _message_of(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception as broken:
        return (
            f"{type(exc).__qualname__} (its message cannot be shown: str() raised "
            f"{type(broken).__qualname__})"
        )


def _frames_of(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_tb(exc.__traceback__))
    except Exception:
        return ""


def argument_error(
    name: str, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> JobError | None:
    """After a call of ``fn`` raised TypeError: the error to record if the arguments
    do not fit its signature (the call failed before the function ran, and would
    fail again), or None when they fit (the TypeError came from inside the task,
    which retries as usual). Costs nothing for jobs that do not raise TypeError."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to read (some builtins)
        return None
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        empty = inspect.Parameter.empty
        plain = signature.replace(  # the parameters alone read best: (account_id, *, month)
            parameters=[p.replace(annotation=empty) for p in signature.parameters.values()],
            return_annotation=inspect.Signature.empty,
        )
        return JobError(
            "ArgumentError",
            f"the job's arguments do not fit {name}{plain}: {exc}; "
            "it can never succeed, so it is not retried",
        )
    return None
