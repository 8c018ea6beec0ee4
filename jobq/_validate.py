"""Argument checks shared by the public constructors, with messages that name the value."""

from __future__ import annotations

from typing import Any


def check_count(name: str, value: Any, minimum: int = 1) -> None:
    """Raise ValueError unless ``value`` is an int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}")


def check_seconds(name: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is a number of seconds greater than 0."""
    if not value > 0:
        raise ValueError(f"{name} must be greater than 0 seconds, got {value!r}")


def check_priority(value: Any) -> None:
    """Raise TypeError unless ``value`` is an int (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"priority must be an integer, got {value!r}")
