"""PostgreSQL seen from one process: a connection pool per process, statements
with retries, errors in jobq's words, and the ``now`` each statement reads.

Each process opens its own pool; after ``fork()`` the child opens a new one and
never touches (nor closes) the parent's sockets.

Rule: imports psycopg, psycopg_pool and the storage contract's errors; knows no
job SQL.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, TypeAlias

from ..base import StorageError

try:
    import psycopg
    import psycopg.errors
    from psycopg import pq
    from psycopg_pool import ConnectionPool
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "PostgreSQL storage needs psycopg 3 and psycopg_pool: pip install 'jobq[postgres]'"
    ) from exc

Params: TypeAlias = "dict[str, Any] | Sequence[Any]"
Clock = Literal["database", "caller"]

RETRIES = 5
"""Deadlocks and serialization failures are retried this many times."""


def redacted(url: str) -> str:
    """The URL without its password, for messages and reprs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "<invalid connection string>"
    if "password" in info:
        info["password"] = "***"
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


class Database:
    """The connections of this process to one PostgreSQL database.

    :param clock: ``"database"``: statements read the server's clock (:meth:`now`
        gives them None); ``"caller"``: they use the ``now`` passed in.
    """

    def __init__(
        self, url: str, *, clock: Clock, min_size: int, max_size: int, timeout: float
    ) -> None:
        self.url = url
        self.clock = clock
        self._min = min_size
        self._max = max_size
        self._timeout = timeout
        self._lock = threading.Lock()
        self._pool: ConnectionPool | None = None
        self.pid = os.getpid()
        self._inherited: list[object] = []  # a parent's pools, kept so GC never closes them
        self._closed = False
        self._kept_lock = threading.Lock()
        self._kept: psycopg.Connection[Any] | None = None  # see single()
        self._kept_pid = self.pid

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A connection of its own, outside the pool (migrations, LISTEN)."""
        try:
            return psycopg.connect(self.url, connect_timeout=max(1, round(self._timeout)), **kwargs)
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to PostgreSQL: {exc}".strip()) from exc

    def pool(self) -> ConnectionPool:
        """This process's pool, opened if needed (a new one after ``fork()``)."""
        pid = os.getpid()
        pool = self._pool
        if pool is not None and self.pid == pid:
            return pool
        with self._lock:
            if self._closed:
                raise StorageError("this PostgresStorage was closed")
            if self.pid != pid:
                # Forked: the parent's sockets are not ours to use or to close.
                self._inherited.append(self._pool)
                self._pool = None
                self.pid = pid
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.url,
                    min_size=self._min,
                    max_size=self._max,
                    timeout=self._timeout,
                    kwargs={"autocommit": True},
                    name=f"jobq-postgres-{pid}",
                    open=True,
                )
            return self._pool

    @contextmanager
    def conn(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection (autocommit), its errors as :class:`StorageError`."""
        with _errors(), self.pool().connection() as conn:
            yield conn

    @contextmanager
    def single(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection for one autocommit statement: the one this process keeps
        for them while no other thread uses it, else a pooled one.

        The kept connection is one of the pool's, checked out once: a statement on
        it skips the pool's checkout and return, and always finds the same server
        process warm (the pool hands its connections round in turn)."""
        if self._max < 2 or not self._kept_lock.acquire(blocking=False):
            with self.conn() as conn:
                yield conn
            return
        try:
            with _errors():
                conn = self._kept_conn()
                try:
                    yield conn
                finally:
                    if conn.closed or conn.info.transaction_status != pq.TransactionStatus.IDLE:
                        self._kept = None  # broken or left in a transaction: the pool decides
                        self.pool().putconn(conn)
        finally:
            self._kept_lock.release()

    def _kept_conn(self) -> psycopg.Connection[Any]:
        """The kept connection of this process (taken from the pool if needed). Kept lock held."""
        pool = self.pool()  # a new pool after fork(): the parent's connection is not ours
        if self._kept is None or self._kept_pid != self.pid:
            self._kept = pool.getconn()
            self._kept_pid = self.pid
        return self._kept

    def _give_back_kept(self, pool: ConnectionPool | None) -> None:
        """Return the kept connection to ``pool`` (after any statement running on it)."""
        with self._kept_lock:
            kept, self._kept = self._kept, None
            if kept is not None and pool is not None and self._kept_pid == os.getpid():
                pool.putconn(kept)

    def run(self, statement: str, params: Params = ()) -> list[Any]:
        """Run one statement (in its own transaction) and return its rows, retrying
        the deadlocks and serialization failures concurrent writers can cause."""
        for attempt in range(RETRIES):
            try:
                with self.single() as conn:
                    cursor = conn.execute(statement, params)
                    result = cursor.pgresult
                    if result is None or result.status != pq.ExecStatus.TUPLES_OK:
                        return []
                    return cursor.fetchall()
            except StorageError as exc:
                if attempt + 1 < RETRIES and isinstance(
                    exc.__cause__,
                    psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure,
                ):
                    continue
                raise
        raise AssertionError("unreachable")

    def rowcount(self, statement: str, params: Params) -> int:
        """Run one statement; the rows it changed."""
        with self.single() as conn:
            return conn.execute(statement, params).rowcount

    def now(self, now: float) -> float | None:
        """The ``now`` parameter of a statement: None makes it read the server clock."""
        return None if self.clock == "database" else float(now)

    def close(self) -> bool:
        """Close this process's pool; False (closing nothing) in a forked child
        whose pool is the parent's. The object must not be used afterwards."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
            mine = self.pid == os.getpid()
        if mine:
            self._give_back_kept(pool)
        if mine and pool is not None:
            pool.close()
        return mine


@contextmanager
def _errors() -> Iterator[None]:
    """psycopg's and the pool's errors as :class:`StorageError` (a unique
    violation passes through: callers handle it)."""
    try:
        yield
    except (psycopg.errors.UniqueViolation, StorageError):
        raise
    except psycopg.Error as exc:
        raise StorageError(f"PostgreSQL error: {exc}".strip()) from exc
    except Exception as exc:  # the pool's own errors (timeouts, closed pool)
        if type(exc).__module__.startswith("psycopg_pool"):
            raise StorageError(f"PostgreSQL connection pool: {exc}".strip()) from exc
        raise
