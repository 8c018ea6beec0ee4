"""Jobs into SQLite through the app's own connection, in its transaction (the
:class:`~jobq.storage.external.ExternalStore` part of
:class:`~jobq.storage.sqlite.SQLiteStorage`).

The app's connection must have the queue's file as its main database and come
from the same SQLite library as the queue's connections (``sqlite3`` or
``apsw``: two copies of SQLite in one process ignore each other's locks). The
rows go in with the inserts of :mod:`.inserts`, so unique keys and their
policies behave as for any enqueue.

A ``sqlite3`` connection in its default mode has not begun a transaction until
its first write: then this part begins one with ``BEGIN IMMEDIATE`` (the write
lock up front, as jobq's own writes take it), and the app's later statements and
its ``commit()`` or ``rollback()`` belong to it. A connection in autocommit mode
(``isolation_level=None``, or ``autocommit=True``) without a transaction open is
refused, and so is an ``apsw`` connection outside ``BEGIN``: every statement
would commit on its own.

Rule: runs SQL only; imports this backend's database, driver and inserts, and
the storage contract.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Collection, Sequence
from typing import Any

from ...errors import ConfigurationError
from ..base import Enqueued, NewJob, StorageError
from .database import Database, describe_error
from .driver import Connection
from .inserts import SQLiteInserts

_LEGACY = getattr(sqlite3, "LEGACY_TRANSACTION_CONTROL", -1)


def library_of(connection: object) -> str | None:
    """``"sqlite3"`` or ``"apsw"`` for a connection of that library, else None."""
    if isinstance(connection, sqlite3.Connection):
        return "sqlite3"
    kind = type(connection)
    if kind.__module__ == "apsw" and kind.__name__ == "Connection":
        return "apsw"
    return None


def main_file(conn: Connection) -> str:
    """The file of the connection's main database ('' for an in-memory one)."""
    for _seq, name, file in conn.query("PRAGMA database_list"):
        if name == "main":
            return str(file or "")
    return ""


class SQLiteExternal:
    """Writes jobs through connections the app owns, to one SQLite file.

    :param notify: called with each queue name after the app's commit (the storage's
        wake-up channel).
    """

    def __init__(
        self, db: Database, inserts: SQLiteInserts, notify: Callable[[str | None], None]
    ) -> None:
        self._db = db
        self._inserts = inserts
        self._notify = notify

    def enqueue(self, connection: Any, job: NewJob, now: float) -> Enqueued:
        conn = self._joined(connection)
        try:
            return self._inserts.insert_one(conn, job, now)
        except self._db.errors as exc:
            raise StorageError(describe_error(self._db.path, exc)) from exc

    def enqueue_many(self, connection: Any, jobs: Sequence[NewJob], now: float) -> list[int]:
        conn = self._joined(connection)
        try:
            return self._inserts.insert_jobs(conn, jobs, now)
        except self._db.errors as exc:
            raise StorageError(describe_error(self._db.path, exc)) from exc

    def enqueue_payloads(
        self, connection: Any, template: NewJob, payloads: Sequence[str], now: float
    ) -> list[int]:
        conn = self._joined(connection)
        try:
            return self._inserts.insert_payloads(conn, template, payloads, now)
        except self._db.errors as exc:
            raise StorageError(describe_error(self._db.path, exc)) from exc

    def committed(self, queues: Collection[str]) -> None:
        for queue in queues:
            self._notify(queue)

    def _joined(self, connection: Any) -> Connection:
        """``connection`` checked and wrapped, inside a transaction (begun here if
        its driver would have begun one at the first write)."""
        db = self._db
        library = library_of(connection)
        if library is None:
            raise ConfigurationError(
                f"a SQLite queue writes jobs through a sqlite3 or apsw connection, a "
                f"SQLAlchemy Connection or a Session on the queue's file; got "
                f"{type(connection).__name__}"
            )
        if library != db.driver.name:
            raise ConfigurationError(
                f"this queue opens {db.path!r} with {db.driver.name} but the connection given "
                f"is {library}'s: two SQLite libraries in one process ignore each other's "
                f"locks; open the queue with driver={library!r}"
            )
        conn = Connection(db.driver, connection)
        try:
            self._check_file(conn)
            if not connection.in_transaction:
                self._begin(conn, connection, library)
        except db.errors as exc:
            raise StorageError(describe_error(db.path, exc)) from exc
        return conn

    def _check_file(self, conn: Connection) -> None:
        file = main_file(conn)
        same = bool(file) and (file == self._db.path or _same_file(file, self._db.path))
        if not same:
            where = repr(file) if file else "an in-memory database"
            raise ConfigurationError(
                f"the connection's database is {where}, not the queue's file "
                f"{self._db.path!r}: a job commits with the app's rows only when both are "
                "in one file (give the app and the queue the same SQLite file)"
            )

    def _begin(self, conn: Connection, raw: Any, library: str) -> None:
        implicit = (
            library == "sqlite3"
            and getattr(raw, "autocommit", _LEGACY) == _LEGACY
            and raw.isolation_level is not None
        )
        if not implicit:
            raise ConfigurationError(
                "the connection is in autocommit mode and no transaction is open: each "
                "insert would commit at once; begin a transaction first (BEGIN, or a "
                "SQLAlchemy Session or Connection.begin())"
            )
        # The sqlite3 module would begin a deferred transaction at our first INSERT;
        # begin it now, taking the write lock up front as jobq's writes do, so that a
        # unique key is read and written under one lock. The app's commit ends it.
        conn.begin_immediate()


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
