"""The transactional door of :class:`~jobq.DurableQueue`: enqueue in the app's own
database transaction (:meth:`QueueTransactions.in_transaction`).

:class:`QueueTransactions` is a base class of ``DurableQueue`` and works through
the few queue members it declares (see :mod:`jobq.transactional` for the rest).
Rule: it imports basic values, the storage contract and :mod:`jobq.transactional`,
never the queue module itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .storage.base import Storage
from .transactional import Transaction, opened


class QueueTransactions:
    """Enqueueing inside a transaction the app owns (see the module docstring)."""

    storage: Storage
    inline: bool

    def _wake(self, queue_name: str) -> None:
        """Tell this process's pools that jobs of ``queue_name`` may be runnable."""

    def run_until_empty(self) -> int:
        """Run every due job in this thread (see ``DurableQueue.run_until_empty``)."""
        raise NotImplementedError

    @contextmanager
    def in_transaction(self, connection: Any) -> Iterator[Transaction]:
        """Write the jobs enqueued in this block through the app's own transaction::

            with queue.in_transaction(db.session):
                db.session.add(user)
                send_welcome.enqueue(user.email)
            db.session.commit()      # the user row and the job, together

        Every enqueue of this queue inside the block, in this thread or asyncio
        task (``task.enqueue``, ``task.options(...).enqueue``, ``enqueue_many``,
        ``queue.enqueue``, ``enqueue_by_name``), goes through ``connection``'s
        current transaction: workers see the jobs only once it commits, and a
        rollback takes them away with the app's rows. Unique keys, ``on_duplicate``
        and ``throttle`` behave as for any enqueue.

        :param connection: a SQLAlchemy ``Session`` or ``scoped_session``
            (Flask-SQLAlchemy's ``db.session``), a SQLAlchemy ``Connection``, or a
            driver's connection (``sqlite3``, ``apsw``, psycopg 3), to the queue's
            own database: on SQLite its file, opened with the queue's SQLite
            library (``driver=``); on PostgreSQL, the database and schema holding
            the queue's tables.

        Workers are woken after the commit: by a Session's ``after_commit`` event;
        for a connection, when you call ``committed()`` on what the block gives,
        or by polling (PostgreSQL's ``NOTIFY`` arrives at commit in any case).
        Yields the :class:`~jobq.transactional.Transaction`. Raises
        :class:`~jobq.ConfigurationError` for an Engine, a connection to another
        database or one in autocommit mode (at the first enqueue for the last two).
        """
        with opened(self, connection) as transaction:
            yield transaction
