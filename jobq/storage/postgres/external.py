"""Jobs into PostgreSQL through the app's own psycopg connection, in its
transaction (the :class:`~jobq.storage.external.ExternalStore` part of
:class:`~jobq.storage.postgres.PostgresStorage`).

The rows go in with the statements of :mod:`.inserts` (the same ``NOTIFY`` in
the same transaction: PostgreSQL delivers it when the app commits, and drops it
on rollback), with the row factory set to tuples for the time of the call
whatever the app chose. With ``clock="database"`` the rows' times come from the
server's clock, as for any enqueue.

A connection is checked the first time it is seen (remembered while it lives):
``jobq_jobs``, as its ``search_path`` finds it, must be the queue's table, in
the same database of the same running server. Each call also checks its state:
inside a transaction, or outside autocommit (psycopg then begins one at our
first statement); a failed transaction is refused.

Rule: runs SQL only; imports psycopg, this backend's inserts and SQL text, and
the storage contract.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import pq
from psycopg.rows import tuple_row

from ...errors import ConfigurationError
from ..base import Enqueued, NewJob, StorageError
from . import sql
from .connection import Database
from .inserts import Inserted, _enqueue_params, _new_job, insert_jobs, insert_keyed, payloads_params

IDENTITY = (
    "SELECT current_database(), extract(epoch from pg_postmaster_start_time())::float8, "
    "to_regclass('jobq_jobs')::oid::bigint"
)
"""Which database, server run and table ``jobq_jobs`` a connection reaches (never
fails, so it cannot abort the app's transaction)."""


class PostgresExternal:
    """Writes jobs through psycopg connections the app owns, to one database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._checked: weakref.WeakKeyDictionary[psycopg.Connection[Any], bool] = (
            weakref.WeakKeyDictionary()
        )

    def enqueue(self, connection: Any, job: NewJob, now: float) -> Enqueued:
        with self._joined(connection) as conn:
            if job.unique_key is None:
                params = _enqueue_params(job, self._db.now(now))
                row = conn.execute(sql.ENQUEUE_KEYLESS, params).fetchone()
                assert row is not None
                return Enqueued(_new_job(job, Inserted._make(row)), True)
            return insert_keyed(conn, job, self._db.now(now))

    def enqueue_many(self, connection: Any, jobs: Sequence[NewJob], now: float) -> list[int]:
        with self._joined(connection) as conn:
            ids = insert_jobs(conn, jobs, self._db.now(now))
            conn.execute(sql.NOTIFY, (sorted({job.queue for job in jobs}),))
            return ids

    def enqueue_payloads(
        self, connection: Any, template: NewJob, payloads: Sequence[str], now: float
    ) -> list[int]:
        with self._joined(connection) as conn:
            params = payloads_params(template, payloads, self._db.now(now))
            row = conn.execute(sql.ENQUEUE_PAYLOADS, params).fetchone()
            assert row is not None
            ids, _notified = row
            return list(ids)

    def committed(self, queues: Collection[str]) -> None:
        """Nothing: the ``NOTIFY`` sent in the transaction was delivered at its commit."""

    @contextmanager
    def _joined(self, connection: Any) -> Iterator[psycopg.Connection[Any]]:
        """``connection`` checked, returning tuples, its errors as StorageError."""
        conn = _psycopg_connection(connection)
        status = conn.info.transaction_status
        if status == pq.TransactionStatus.INERROR:
            raise ConfigurationError(
                "the connection's transaction has failed: roll it back before enqueueing"
            )
        if status == pq.TransactionStatus.IDLE and conn.autocommit:
            raise ConfigurationError(
                "the connection is in autocommit mode and no transaction is open: each "
                "insert would commit at once; begin a transaction first (conn.transaction(), "
                "or a SQLAlchemy Session or Connection.begin())"
            )
        if status not in (pq.TransactionStatus.IDLE, pq.TransactionStatus.INTRANS):
            raise ConfigurationError(f"the connection is not ready for a statement ({status.name})")
        factory = conn.row_factory
        if factory is not tuple_row:  # the app's choice (dict_row ...): ours for this call
            conn.row_factory = tuple_row
        try:
            if conn not in self._checked:
                self._check_database(conn)
            yield conn
        except psycopg.Error as exc:
            raise StorageError(
                f"PostgreSQL error: {exc}".strip() + "; the app's transaction must be rolled back"
            ) from exc
        finally:
            if factory is not tuple_row:
                conn.row_factory = factory

    def _check_database(self, conn: psycopg.Connection[Any]) -> None:
        theirs = conn.execute(IDENTITY).fetchone()
        ours = self._db.run(IDENTITY)[0]
        assert theirs is not None
        if theirs[2] is None:
            raise ConfigurationError(
                f"no table jobq_jobs is reachable from the connection (database "
                f"{theirs[0]!r}): connect it to the queue's database, with the queue's "
                "schema in its search_path"
            )
        if tuple(theirs) != tuple(ours):
            raise ConfigurationError(
                f"the connection reaches another jobq_jobs table than the queue's (database "
                f"{theirs[0]!r}, the queue's {ours[0]!r}): a job commits with the app's rows "
                "only in the queue's own database and schema"
            )
        with self._lock:
            self._checked[conn] = True


def _psycopg_connection(connection: Any) -> psycopg.Connection[Any]:
    if isinstance(connection, psycopg.Connection):
        return connection
    module = type(connection).__module__
    if module.startswith("psycopg2"):
        raise ConfigurationError(
            "jobq writes through psycopg 3, not psycopg2: use a postgresql+psycopg:// "
            "SQLAlchemy URL (pip install 'jobq[postgres]')"
        )
    raise ConfigurationError(
        f"a PostgreSQL queue writes jobs through a psycopg connection, a SQLAlchemy "
        f"Connection or a Session on the queue's database; got {type(connection).__name__}"
    )
