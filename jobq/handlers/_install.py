"""How a handler is installed on a queue: settings read once, the objects made from
them kept in ``queue.extensions``, and the task registered under its fixed name.

Every handler's ``install(queue, settings)`` and ``uninstall(queue)`` are built
from these pieces, so that they replace, remove, close and back off alike.

Rule: this module knows no handler; it imports only jobq's lower layers (backoff,
the job context, errors, and the queue and tasks for type checking).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .. import backoff as backoffs
from ..context import current_job
from ..errors import ConfigurationError, Refused
from ..retry_rules import DiscardOn, RetryOn
from ..tasks import ArgumentCheck

if TYPE_CHECKING:
    from ..queue import DurableQueue
    from ..tasks import Task

__all__ = [
    "DISCARD_ON",
    "installed",
    "named",
    "register",
    "remove_installed",
    "replace_installed",
    "retry_backoff",
    "settings_from_mapping",
    "settings_of",
]

DISCARD_ON: tuple[type[BaseException], ...] = (Refused,)
"""The default ``discard_on`` of the email and webhook handlers: a server's
refusal for good ends the job."""

S = TypeVar("S")
H = TypeVar("H")
F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")


def settings_from_mapping(cls: type[S], mapping: Mapping[str, Any], what: str) -> S:
    """Build the settings dataclass ``cls`` from ``mapping``; unknown keys are refused
    with the list of known ones (a typo must not silently keep a default)."""
    if not isinstance(mapping, Mapping):
        raise ConfigurationError(f"{what} must be a mapping of settings, got {mapping!r}")
    known = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise ConfigurationError(
            f"unknown {what} setting(s) {', '.join(map(repr, unknown))}; "
            f"known settings: {', '.join(known)}"
        )
    try:
        return cls(**mapping)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"invalid {what} settings: {exc}") from exc


def settings_of(cls: type[S], settings: S | Mapping[str, Any], what: str) -> S:
    """``settings`` if it is a ``cls`` already, else ``cls`` built from the mapping
    (see :func:`settings_from_mapping`; ``what`` names the config key)."""
    if isinstance(settings, cls):
        return settings
    return settings_from_mapping(cls, settings, what)  # type: ignore[arg-type]


def installed(key: str, kind: type[H], install_hint: str) -> H:
    """The object a handler's ``install`` kept under ``key`` on the current job's queue.

    Raises RuntimeError outside a job, ConfigurationError when nothing was installed.
    """
    found = current_job().queue.extensions.get(key)
    if not isinstance(found, kind):
        raise ConfigurationError(
            f"the {key} handler is not installed on this queue; call {install_hint} first"
        )
    return found


def replace_installed(queue: DurableQueue, key: str, value: object) -> None:
    """Keep ``value`` on ``queue`` under ``key``, closing what was there before (the
    connections of an earlier install)."""
    previous = queue.extensions.get(key)
    queue.extensions[key] = value
    _close(previous)


def remove_installed(queue: DurableQueue, key: str) -> None:
    """Forget what was kept under ``key`` and close its connections."""
    _close(queue.extensions.pop(key, None))


def retry_backoff(first_delay: float) -> backoffs.Backoff:
    """Exponential backoff with jitter from ``first_delay`` seconds, capped at an hour
    (or at ``first_delay`` if longer); no delay when it is 0."""
    if first_delay <= 0:
        return backoffs.fixed(0.0)
    return backoffs.exponential(base=first_delay, cap=max(3600.0, first_delay))


def register(
    queue: DurableQueue,
    function: Callable[P, R],
    *,
    name: str,
    max_attempts: int,
    retry_delay: float,
    check: ArgumentCheck | None = None,
    retry_on: RetryOn | None = None,
    discard_on: DiscardOn | None = None,
) -> Task[P, R]:
    """Register ``function`` on ``queue`` as the task ``name``, retried up to
    ``max_attempts`` with :func:`retry_backoff` from ``retry_delay`` seconds, and
    by the rules ``retry_on`` and ``discard_on``; ``check`` refuses arguments that
    can never succeed, at every enqueue."""
    backoff = retry_backoff(retry_delay)
    return queue.task(
        name,
        max_attempts=max_attempts,
        backoff=backoff,
        check=check,
        retry_on=retry_on,
        discard_on=discard_on,
    )(function)


def named(function: F, module: str) -> F:
    """``function`` (an ``install`` made by a factory) named ``install`` in ``module``,
    the public module users import it from."""
    function.__qualname__ = function.__name__ = "install"
    function.__module__ = module
    return function


def _close(value: object) -> None:
    close = getattr(value, "close", None)
    if callable(close):
        close()
