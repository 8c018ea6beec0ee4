"""Named, process-wide executors: one limit shared by every thread of the process.

A rate limit only means something if every caller goes through the same
executor. ``jobq.executor("openai", ...)`` returns one instance per name for
the whole process, however many request threads ask for it.

Rule: imports only basic values and the bounded executor; never storage, the
durable queue or anything above them.
"""

from __future__ import annotations

import enum
import inspect
import threading
from typing import Any, Literal

from ..clock import MonotonicClock
from ..errors import ConfigurationError
from .bounded import BoundedExecutor


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET = _Unset.UNSET

_lock = threading.Lock()
_executors: dict[str, tuple[BoundedExecutor, dict[str, Any]]] = {}
_SETTINGS = (
    "max_workers",
    "rate",
    "per",
    "burst",
    "strict",
    "timeout",
    "max_queued",
    "when_full",
    "clock",
)
_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(BoundedExecutor).parameters.items()
    if parameter.default is not inspect.Parameter.empty
}


def executor(
    name: str,
    *,
    max_workers: int | _Unset | None = UNSET,
    rate: float | _Unset | None = UNSET,
    per: float | _Unset = UNSET,
    burst: int | _Unset | None = UNSET,
    strict: bool | _Unset = UNSET,
    timeout: float | _Unset | None = UNSET,
    max_queued: int | _Unset | None = UNSET,
    when_full: Literal["block", "raise"] | _Unset = UNSET,
    clock: MonotonicClock | _Unset = UNSET,
) -> BoundedExecutor:
    """Return the process-wide :class:`BoundedExecutor` called ``name``, creating it on first use.

    Configure it once, where the app starts or in every caller with the same
    settings, and get it anywhere by name::

        jobq.executor("openai", max_workers=4, rate=10, per=60)   # configures
        jobq.executor("openai").submit(ask, prompt)                # same instance

    Every call from every thread returns the same instance, so its limits hold
    for the whole process. Settings are those of :class:`BoundedExecutor`.

    Raises :class:`~jobq.ConfigurationError` when a setting given differs
    from the one the executor was created with, or when ``name`` is asked for
    with no settings before it was ever configured. An executor that was shut
    down is created anew, with the same settings, by the next call. There is
    one executor per name in the whole process, shared by every app in it.
    """
    given = {
        key: value
        for key, value in (
            ("max_workers", max_workers),
            ("rate", rate),
            ("per", per),
            ("burst", burst),
            ("strict", strict),
            ("timeout", timeout),
            ("max_queued", max_queued),
            ("when_full", when_full),
            ("clock", clock),
        )
        if value is not UNSET
    }
    with _lock:
        existing = _executors.get(name)
        if existing is None:
            if not given:
                raise ConfigurationError(
                    f"no executor named {name!r} is configured; configure it once with "
                    f"jobq.executor({name!r}, max_workers=..., rate=..., per=...)"
                )
            settings = {key: _DEFAULTS[key] for key in _SETTINGS}
            settings.update(given)
        else:
            instance, settings = existing
            conflicts = [key for key, value in given.items() if value != settings[key]]
            if conflicts:
                described = ", ".join(
                    f"{key}={given[key]!r} (was {settings[key]!r})" for key in conflicts
                )
                raise ConfigurationError(
                    f"executor {name!r} is already configured differently: {described}. "
                    f"Configure it in one place and elsewhere call jobq.executor({name!r})."
                )
            if not instance.is_shutdown:
                return instance
        instance = BoundedExecutor(name=name, **settings)
        _executors[name] = (instance, settings)
        return instance


def shutdown_all(wait: bool = True) -> None:
    """Shut down and forget every named executor, cancelling the tasks that wait.

    The next ``executor(name, ...)`` with settings creates a new one; see
    :func:`jobq.testing.shutdown_executors`, the public way to call this.
    """
    with _lock:
        executors = [instance for instance, _ in _executors.values()]
        _executors.clear()
    for instance in executors:
        instance.shutdown(wait=wait, cancel_futures=True)
