"""Turning :class:`~jobq.storage.base.TaskLimit` settings and what the database
says (jobs running per task and limit key, starts in each rate window) into what
one claim may take. Shared by the SQL backends; pure, so it is tested without a
database.

A limit holds for a *group* of jobs: the task's jobs (or a rate key's starts) as
a whole, or, with ``per_key``, those of one ``limit_key`` (jobs without a key
form one group of their own). Groups are ``(task name or rate key, limit key)``,
the limit key None for a whole task.

Rule: imports only the storage contract, never a backend or a driver.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import NamedTuple, Protocol, TypeVar

from .base import TaskLimit

Group = tuple[str, str | None]
"""(task name or rate key, limit key): what one limit counts."""


class Candidate(Protocol):
    """A runnable job as a claim sees it: its task name and limit key matter here."""

    @property
    def name(self) -> str: ...

    @property
    def limit_key(self) -> str | None: ...


Row = TypeVar("Row", bound=Candidate)


class Window(NamedTuple):
    """A rate window: ``rate`` starts per ``per`` seconds, per limit key or not."""

    rate: int
    per: float
    per_key: bool


def rate_key(name: str, limit: TaskLimit) -> str:
    """The key of the rate window a task's starts count against."""
    return limit.rate_key or name


def rate_windows(limits: Mapping[str, TaskLimit]) -> dict[str, Window]:
    """Each rate key and its window; tasks sharing a key must agree on it."""
    windows: dict[str, Window] = {}
    for name, limit in limits.items():
        if limit.rate is None:
            continue
        key = rate_key(name, limit)
        window = Window(limit.rate, float(limit.per), bool(limit.per_key))
        if windows.setdefault(key, window) != window:
            raise ValueError(
                f"tasks sharing rate key {key!r} give it different rates (or one per limit key "
                "and one not)"
            )
    return windows


class Allowance:
    """How many jobs of each limited task (and limit key) one claim may still take.

    :param running: processing jobs per (task name, limit key) of the limited tasks.
    :param started: starts in the current window per (rate key, limit key).
    :param at_most: jobs of limited tasks this claim may take in all, or None.
    """

    def __init__(
        self,
        limits: Mapping[str, TaskLimit],
        running: Mapping[Group, int],
        started: Mapping[Group, int],
        at_most: int | None,
    ) -> None:
        self._limits = limits
        self._windows = rate_windows(limits)
        self._running: Counter[Group] = Counter()
        for (name, key), count in running.items():
            limit = limits.get(name)
            if limit is not None and limit.concurrency is not None:
                self._running[name, key if limit.per_key else None] += count
        self._started: Counter[Group] = Counter()
        for (rkey, key), count in started.items():
            window = self._windows.get(rkey)
            if window is not None:
                self._started[rkey, key if window.per_key else None] += count
        self._total = math.inf if at_most is None else at_most
        self.rate_starts: list[Group] = []  # one group per job taken that counts against a rate
        self.skipped = False  # take() passed over a row whose group filled up meanwhile

    def _room(self, name: str, limit_key: str | None) -> float:
        limit = self._limits[name]
        key = limit_key if limit.per_key else None
        room = self._total
        if limit.concurrency is not None:
            room = min(room, limit.concurrency - self._running[name, key])
        if limit.rate is not None:
            room = min(room, limit.rate - self._started[rate_key(name, limit), key])
        return room

    def blocked(self) -> list[str]:
        """Limited tasks this claim cannot take any job of (any key)."""
        return sorted(
            name
            for name, limit in self._limits.items()
            if self._total <= 0 or (not limit.per_key and self._room(name, None) <= 0)
        )

    def blocked_groups(self) -> list[tuple[str, str]]:
        """The (task name, limit key) of per-key tasks this claim cannot take any job
        of; the key ``""`` for jobs without one (a claim query compares
        ``(name, coalesce(limit_key, ''))``). As many as keys with jobs running or
        started in a window, at most."""
        groups: set[Group] = {group for group in self._running if group[0] in self._limits}
        for rkey, key in self._started:
            for name, limit in self._limits.items():
                if limit.per_key and limit.rate is not None and rate_key(name, limit) == rkey:
                    groups.add((name, key))
        return sorted(
            (name, key or "")
            for name, key in groups
            if self._limits[name].per_key and self._room(name, key) <= 0
        )

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
            if self._room(name, row.limit_key) <= 0:
                self.skipped = True
                continue
            chosen.append(row)
            self._total -= 1
            key = row.limit_key if limit.per_key else None
            if limit.concurrency is not None:
                self._running[name, key] += 1
            if limit.rate is not None:
                group = (rate_key(name, limit), key)
                self._started[group] += 1
                self.rate_starts.append(group)
        return chosen
