"""Argument checks for every public constructor and setting, with messages that
name the value: the one place where jobq decides what a count, a number of
seconds or a priority may be.

Rule: this module is a basic value; it imports nothing from jobq, and every
other module (storage, handlers, the command line, the Flask extension) checks
its arguments with these functions instead of writing its own.
"""

from __future__ import annotations

import math
import re
from typing import Any


def is_int(value: object) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """True for an int or float that is not a bool (NaN and infinities included)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_count(name: str, value: Any, minimum: int = 1) -> None:
    """Raise ValueError unless ``value`` is an int (not a bool) of at least ``minimum``."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}")


def check_int_range(name: str, value: object, bounds: tuple[int, int], where: str = "") -> None:
    """Raise ValueError unless ``value`` is an int (not a bool) within ``bounds``
    (both ends included), naming the value and the range; ``where`` is appended
    to the message (e.g. `` (jobs[3])``)."""
    low, high = bounds
    if not is_int(value) or not low <= value <= high:  # type: ignore[operator]
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}{where}")


def check_seconds(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is a finite number of seconds greater than 0
    (an infinite one would overflow every wait and every deadline computed from it)."""
    check_positive_number(name, value, unit=" of seconds")


def check_positive_number(name: str, value: Any, unit: str = "") -> None:
    """Raise ValueError unless ``value`` is a finite int or float (not a bool) above 0;
    ``unit`` is said after "number" (e.g. ``" of seconds"``)."""
    if not is_number(value) or not 0 < value < math.inf:  # also False for NaN
        raise ValueError(f"{name} must be a finite number{unit} greater than 0, got {value!r}")


def check_time(name: str, value: float) -> None:
    """Raise ValueError unless ``value`` is finite epoch seconds."""
    if type(value) is float and math.isfinite(value):
        return
    if not is_number(value) or not math.isfinite(value):
        raise ValueError(f"{name} must be finite epoch seconds (a float), got {value!r}")


def check_priority(value: Any) -> None:
    """Raise TypeError unless ``value`` is an int (not a bool)."""
    if not is_int(value):
        raise TypeError(f"priority must be an integer, got {value!r}")


_PERIODS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_RATE = re.compile(r"(?P<count>\d+)/(?P<number>\d+(?:\.\d+)?)?(?P<unit>[a-z]+)")


def parse_rate(rate: str | tuple[int, float]) -> tuple[int, float]:
    """``(count, seconds)`` of a rate written ``(count, seconds)`` or as text such as
    ``"10/s"``, ``"100/m"``, ``"1000/h"``, ``"5/10s"`` (five per ten seconds).
    Raises ValueError naming the value."""
    if isinstance(rate, str):
        found = _RATE.fullmatch(rate.replace(" ", ""))
        if found is None or found["unit"] not in _PERIODS:
            raise ValueError(
                f"rate_limit must look like '10/s', '100/m', '1000/h' or '5/10s', got {rate!r}"
            )
        count = int(found["count"])
        per = float(found["number"] or 1) * _PERIODS[found["unit"]]
    else:
        count, per = rate
    check_count("rate_limit count", count)
    if not (isinstance(per, (int, float)) and 0 < per < float("inf")):
        raise ValueError(f"rate_limit period must be seconds > 0, got {per!r}")
    return count, float(per)
