"""Turning :class:`~jobq.storage.base.TaskLimit` settings and what the database
says (jobs running per task, starts in each rate window) into what one claim
may take. Shared by the SQL backends; pure, so it is tested without a database.

Rule: imports only the storage contract, never a backend or a driver.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Protocol, TypeVar

from .base import TaskLimit


class Candidate(Protocol):
    """A runnable job as a claim sees it: only its task name matters here."""

    @property
    def name(self) -> str: ...


Row = TypeVar("Row", bound=Candidate)


def rate_key(name: str, limit: TaskLimit) -> str:
    """The key of the rate window a task's starts count against."""
    return limit.rate_key or name


def rate_windows(limits: Mapping[str, TaskLimit]) -> dict[str, tuple[int, float]]:
    """Each rate key and its (rate, per); tasks sharing a key must agree on it."""
    windows: dict[str, tuple[int, float]] = {}
    for name, limit in limits.items():
        if limit.rate is None:
            continue
        key = rate_key(name, limit)
        window = (limit.rate, float(limit.per))
        if windows.setdefault(key, window) != window:
            raise ValueError(f"tasks sharing rate key {key!r} give it different rates")
    return windows


class Allowance:
    """How many jobs of each limited task one claim may still take."""

    def __init__(
        self,
        limits: Mapping[str, TaskLimit],
        running: Mapping[str, int],
        started: Mapping[str, int],
        at_most: int | None,
    ) -> None:
        self._limits = limits
        self._per_name = {
            name: limit.concurrency - running.get(name, 0)
            for name, limit in limits.items()
            if limit.concurrency is not None
        }
        self._per_key = {
            key: rate - started.get(key, 0) for key, (rate, _) in rate_windows(limits).items()
        }
        self._total = math.inf if at_most is None else at_most
        self.rate_starts: list[str] = []  # one key per job taken that counts against a rate

    def _room(self, name: str) -> float:
        limit = self._limits[name]
        room = min(self._total, self._per_name.get(name, math.inf))
        if limit.rate is not None:
            room = min(room, self._per_key[rate_key(name, limit)])
        return room

    def blocked(self) -> list[str]:
        """Limited tasks this claim cannot take any job of."""
        return sorted(name for name in self._limits if self._room(name) <= 0)

    def take(self, rows: Iterable[Row], count: int) -> list[Row]:
        """The first ``count`` rows, in order, that fit; limited ones count as taken."""
        chosen: list[Row] = []
        for row in rows:
            if len(chosen) == count:
                break
            name = row.name
            limit = self._limits.get(name)
            if limit is None:
                chosen.append(row)
                continue
            if self._room(name) <= 0:
                continue
            chosen.append(row)
            self._total -= 1
            if name in self._per_name:
                self._per_name[name] -= 1
            if limit.rate is not None:
                key = rate_key(name, limit)
                self._per_key[key] -= 1
                self.rate_starts.append(key)
        return chosen
