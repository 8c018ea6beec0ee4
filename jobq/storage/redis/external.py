"""Transactional enqueue on Redis: refused, by design.

:meth:`jobq.DurableQueue.in_transaction` writes jobs through the app's own SQL
connection, so they commit or roll back with the app's rows. A Redis queue cannot
join an SQL transaction: a job written to Redis would stay after the app's
rollback, or run before its commit. Every call says so and stores nothing; the way
to have it is a queue on SQLite or PostgreSQL, in the database that holds the app's
rows.

The :class:`~jobq.storage.external.ExternalStore` part of
:class:`~jobq.storage.redis.RedisStorage`.

Rule: imports the errors and the storage contract only.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, NoReturn

from ...errors import ConfigurationError
from ..base import Enqueued, NewJob

REFUSED = (
    "jobs cannot be enqueued in the app's transaction (in_transaction) on Redis: a Redis "
    "queue cannot join an SQL transaction, so the jobs would not commit or roll back with "
    "the app's rows. Use a queue on SQLite or PostgreSQL, in the database that holds the "
    "app's rows, for transactional enqueue; or enqueue on Redis after the app has committed"
)
"""The message of the :class:`~jobq.errors.ConfigurationError` every call raises."""


def _refuse() -> NoReturn:
    raise ConfigurationError(REFUSED)


class RedisExternal:
    """Refuses every transactional enqueue (see the module docstring)."""

    def enqueue(self, connection: Any, job: NewJob, now: float) -> Enqueued:
        _refuse()

    def enqueue_many(self, connection: Any, jobs: Sequence[NewJob], now: float) -> list[int]:
        _refuse()

    def enqueue_payloads(
        self, connection: Any, template: NewJob, payloads: Sequence[str], now: float
    ) -> list[int]:
        _refuse()

    def committed(self, queues: Collection[str]) -> None:
        """Nothing to wake: nothing can have been written."""
