"""Argument checks shared by the public constructors, with messages that name the value."""

from __future__ import annotations

import math
from typing import Any


def check_count(name: str, value: Any, minimum: int = 1) -> None:
    """Raise ValueError unless ``value`` is an int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}")


def check_seconds(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is a finite number of seconds greater than 0
    (an infinite one would overflow every wait and every deadline computed from it)."""
    check_positive_number(name, value, unit=" of seconds")


def check_positive_number(name: str, value: Any, unit: str = "") -> None:
    """Raise ValueError unless ``value`` is a finite int or float (not a bool) above 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value < math.inf  # also False for NaN
    ):
        raise ValueError(f"{name} must be a finite number{unit} greater than 0, got {value!r}")


def check_priority(value: Any) -> None:
    """Raise TypeError unless ``value`` is an int (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"priority must be an integer, got {value!r}")
