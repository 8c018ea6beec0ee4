"""Unique-key policies: what an enqueue does when a job of its task already holds
its ``unique_key`` (keep it, replace its arguments, debounce it).

The policy itself runs in storage (``NewJob.on_duplicate``), atomically with the
insert; this module checks the options users write.

Rule: imports basic values only.
"""

from __future__ import annotations

from typing import Literal, Protocol, get_args

OnDuplicate = Literal["keep", "replace"]
"""What an enqueue does with the live job holding its unique key (``on_duplicate``)."""
ON_DUPLICATE: tuple[str, ...] = get_args(OnDuplicate)
"""The values of ``on_duplicate``."""


class DuplicateOptions(Protocol):
    """The options :func:`check_duplicate_policy` reads (a :class:`~jobq.JobOptions`)."""

    @property
    def unique_key(self) -> str | None: ...
    @property
    def on_duplicate(self) -> str | None: ...
    @property
    def debounce(self) -> float | None: ...
    @property
    def delay(self) -> float | None: ...
    @property
    def run_at(self) -> float | None: ...
    @property
    def throttle(self) -> float | None: ...


def check_duplicate_policy(options: DuplicateOptions) -> None:
    """Raise ValueError or TypeError, naming the option, unless ``on_duplicate`` and
    ``debounce`` make sense together and with the rest of ``options``."""
    on_duplicate, debounce = options.on_duplicate, options.debounce
    if on_duplicate is not None and on_duplicate not in ON_DUPLICATE:
        raise ValueError(
            f"on_duplicate must be one of {', '.join(map(repr, ON_DUPLICATE))}, "
            f"got {on_duplicate!r}"
        )
    if debounce is not None:
        if isinstance(debounce, bool) or not isinstance(debounce, int | float):
            raise TypeError(f"debounce must be a number of seconds, got {debounce!r}")
        if not 0 < debounce < float("inf"):
            raise ValueError(f"debounce must be more than 0 seconds, got {debounce!r}")
        if options.delay is not None or options.run_at is not None:
            raise ValueError(
                "debounce= sets the run time (now + debounce at each enqueue): "
                "give it without delay= or run_at="
            )
        if on_duplicate == "keep":
            raise ValueError(
                "debounce= replaces the pending job at each enqueue: it cannot go with "
                'on_duplicate="keep"'
            )
    if options.throttle is not None:
        _check_throttle(options.throttle, on_duplicate, debounce)
    if options.unique_key is None:
        given = (("debounce", debounce), ("throttle", options.throttle), ("on_duplicate", 1))
        option = next(name for name, value in given if value is not None)
        raise ValueError(
            f"{option}= needs a unique_key: it says what to do with the job already "
            'holding that key, e.g. .options(unique_key=f"doc-{doc_id}", '
            f"{option}=...)"
        )


def _check_throttle(throttle: object, on_duplicate: str | None, debounce: float | None) -> None:
    if isinstance(throttle, bool) or not isinstance(throttle, int | float):
        raise TypeError(f"throttle must be a number of seconds, got {throttle!r}")
    if not 0 < throttle < float("inf"):
        raise ValueError(f"throttle must be more than 0 seconds, got {throttle!r}")
    if on_duplicate == "replace" or debounce is not None:
        raise ValueError(
            "throttle= keeps the job created first in its window: it cannot go with "
            'on_duplicate="replace" nor debounce='
        )
