"""Jobs written in a transaction the application owns: the storage side of
:meth:`jobq.DurableQueue.in_transaction`.

The app hands over its own database connection (the driver's: ``sqlite3``,
``apsw`` or psycopg 3), already inside a transaction or about to begin one
implicitly, and the job rows are inserted through it, with the same SQL as an
ordinary enqueue. They become visible to workers when the app commits, and
vanish if it rolls back: the app's rows and its jobs are both there or both
absent, even after a crash between the two.

What a backend checks before writing (every call; PostgreSQL remembers a
connection it has checked once):

- **the same database**: on SQLite, the connection's main database is the
  queue's file, opened by the same SQLite library as the queue's (two
  libraries in one process ignore each other's locks); on PostgreSQL,
  ``jobq_jobs`` as that connection's ``search_path`` finds it is the queue's
  table, on the same server and database;
- **a transaction**: one is open, or the driver begins one implicitly at the
  first statement (``sqlite3``'s default mode, psycopg outside autocommit). A
  connection in autocommit mode with no transaction open is refused, since each
  insert would commit at once; so is a PostgreSQL transaction that failed.

Wake-ups: PostgreSQL's ``NOTIFY`` is sent inside the transaction and delivered
by the server at commit, so workers anywhere wake then. SQLite has no such
thing: :meth:`ExternalStorage.notify_committed`, called after the app's commit,
tells the other processes of the host (see :mod:`jobq.storage.sqlite.wakeup`);
without it, they find the jobs at their next poll.

Time: ``now`` is the caller's clock, as for :meth:`~jobq.storage.base.Storage.enqueue`
(PostgreSQL with ``clock="database"`` reads the server's clock instead).

:class:`ExternalStorage` is this piece of the storage contract;
:class:`~jobq.storage.external_checked.CheckedExternal` checks its arguments
once, above every backend, and hands them to the backend's
:class:`ExternalStore` part, which only runs SQL.

Rule: imports the storage records only; the storage contract
(:mod:`jobq.storage.base`) imports this module, not the reverse. Never imports
SQLAlchemy: the layer above unwraps its objects.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol

from .records import Enqueued, NewJob


class ExternalStorage(Protocol):
    """The storage contract's piece for jobs written through the app's own
    connection (part of :class:`~jobq.storage.base.Storage`)."""

    def enqueue_on(self, connection: Any, job: NewJob, *, now: float) -> Enqueued:
        """:meth:`~jobq.storage.base.Storage.enqueue` through ``connection`` (a
        ``sqlite3`` or ``apsw`` connection to the queue's file, or a psycopg 3
        connection to the queue's database), in its current transaction: nothing
        is committed. Unique keys, ``on_duplicate`` and ``throttle`` behave as
        there; a live job holding the key is found even if it is not committed
        yet, when it was written through the same connection.

        Raises :class:`~jobq.errors.ConfigurationError` for a connection of
        another kind, to another database, or that would commit each statement
        (autocommit without a transaction open), :class:`~jobq.errors.StorageError`
        for a database error (the app's transaction may then have to be rolled
        back), TypeError or ValueError for a bad job (nothing written).
        """
        ...

    def enqueue_many_on(self, connection: Any, jobs: Sequence[NewJob], *, now: float) -> list[int]:
        """:meth:`~jobq.storage.base.Storage.enqueue_many` through ``connection``, as
        :meth:`enqueue_on` does: jobs without a unique key go in multi-row inserts.
        Every entry is checked before anything is written. Returns the ids in order."""
        ...

    def enqueue_payloads_on(
        self, connection: Any, template: NewJob, payloads: Sequence[str], *, now: float
    ) -> list[int]:
        """:meth:`~jobq.storage.base.Storage.enqueue_payloads` through ``connection``, as
        :meth:`enqueue_on` does: jobs equal to ``template`` but for their payloads, in
        one statement where the template has no unique key nor limit key. Returns
        the ids in order."""
        ...

    def notify_committed(self, queues: Collection[str]) -> None:
        """Tell the worker pools of other processes that jobs of ``queues`` were
        committed (call it after the app's commit). SQLite: through the wake-up
        channel; PostgreSQL: nothing to do, its ``NOTIFY`` went with the commit."""
        ...


class ExternalStore(Protocol):
    """What a backend provides for transactional enqueue: SQL only, on checked values."""

    def enqueue(self, connection: Any, job: NewJob, now: float) -> Enqueued:
        """Check ``connection`` (same database, a transaction) and store ``job`` in it."""
        ...

    def enqueue_many(self, connection: Any, jobs: Sequence[NewJob], now: float) -> list[int]:
        """Check ``connection`` and store ``jobs`` (at least one) in it; their ids."""
        ...

    def enqueue_payloads(
        self, connection: Any, template: NewJob, payloads: Sequence[str], now: float
    ) -> list[int]:
        """Check ``connection`` and store ``template`` once per payload (at least one;
        the template has no unique key nor limit key) in it; their ids."""
        ...

    def committed(self, queues: Collection[str]) -> None:
        """Wake other processes' pools for ``queues`` (nothing where the database does)."""
        ...
