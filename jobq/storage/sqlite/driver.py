"""SQLite drivers behind one small adapter, and process-bound connections.

:class:`_Driver` hides the differences between the standard ``sqlite3`` module
and ``apsw`` (connecting, fetching, change counts, which errors mean "busy"),
so the SQL is written once. A :class:`Connection` remembers the process that
opened it and refuses to run anywhere else.

Rule: imports only the storage contract's errors; knows no SQL of jobq's own.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

from ..base import StorageError, WrongProcessError

T = TypeVar("T")
Row = tuple[Any, ...]

DriverName = Literal["auto", "sqlite3", "apsw"]
"""What ``driver=`` accepts: ``"auto"`` (apsw when installed, else sqlite3), or one
forced."""

BUSY_RETRIES = 5
"""Extra attempts after SQLite reports busy despite its busy timeout."""

_STATEMENT_CACHE = 256


class _Driver:
    """What differs between sqlite3 and apsw; everything else is plain SQL."""

    name: str
    version: tuple[int, int, int]
    errors: tuple[type[BaseException], ...]
    constraint_errors: tuple[type[BaseException], ...]

    def connect(self, path: str, busy_timeout_ms: int) -> Any:
        raise NotImplementedError

    def query(self, conn: Any, sql: str, params: Sequence[Any]) -> list[Row]:
        raise NotImplementedError

    def run(self, conn: Any, sql: str, params: Sequence[Any]) -> int:
        """Execute one statement; return the rows it changed."""
        raise NotImplementedError

    def run_many(self, conn: Any, sql: str, seq: Iterable[Sequence[Any]]) -> int:
        """Execute one statement per parameter tuple; return the rows changed in all."""
        raise NotImplementedError

    def is_busy(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def close(self, conn: Any) -> None:
        conn.close()


class _Sqlite3Driver(_Driver):
    name = "sqlite3"
    version = sqlite3.sqlite_version_info
    errors = (sqlite3.Error,)
    constraint_errors = (sqlite3.IntegrityError,)

    def connect(self, path: str, busy_timeout_ms: int) -> Any:
        # isolation_level=None: the module never begins transactions on its own;
        # we issue BEGIN IMMEDIATE ourselves. check_same_thread=False only so that
        # close() can close every thread's connection; each thread uses its own.
        return sqlite3.connect(
            path,
            timeout=busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=_STATEMENT_CACHE,
        )

    def query(self, conn: Any, sql: str, params: Sequence[Any]) -> list[Row]:
        rows: list[Row] = conn.execute(sql, params).fetchall()
        return rows

    def run(self, conn: Any, sql: str, params: Sequence[Any]) -> int:
        count: int = conn.execute(sql, params).rowcount
        return count

    def run_many(self, conn: Any, sql: str, seq: Iterable[Sequence[Any]]) -> int:
        # rowcount sums sqlite3_changes(), which leaves out rows changed by triggers.
        count: int = conn.executemany(sql, seq).rowcount
        return count

    def is_busy(self, exc: BaseException) -> bool:
        if not isinstance(exc, sqlite3.OperationalError):
            return False
        code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
        if code is not None:
            return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED and their extended codes
        message = str(exc)
        return "locked" in message or "busy" in message


class _Sqlite3PositionalDriver(_Sqlite3Driver):
    """For Python versions (early 3.12) whose sqlite3 wrongly takes ``?1`` for a named
    placeholder (a DeprecationWarning, an error from 3.14 on): the SQL is rewritten
    to plain ``?`` and the parameters repeated to match."""

    def query(self, conn: Any, sql: str, params: Sequence[Any]) -> list[Row]:
        sql, order = _positional(sql)
        return super().query(conn, sql, [params[i] for i in order] if order else params)

    def run(self, conn: Any, sql: str, params: Sequence[Any]) -> int:
        sql, order = _positional(sql)
        return super().run(conn, sql, [params[i] for i in order] if order else params)

    def run_many(self, conn: Any, sql: str, seq: Iterable[Sequence[Any]]) -> int:
        sql, order = _positional(sql)
        if order:
            seq = ([params[i] for i in order] for params in seq)
        return super().run_many(conn, sql, seq)


@functools.lru_cache(maxsize=1024)
def _positional(sql: str) -> tuple[str, tuple[int, ...]]:
    order: list[int] = []

    def plain(match: re.Match[str]) -> str:
        order.append(int(match.group(1)) - 1)
        return "?"

    return re.sub(r"\?(\d+)", plain, sql), tuple(order)


def _numbered_placeholders_warn() -> bool:
    conn = sqlite3.connect(":memory:")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            conn.execute("SELECT ?1", (1,)).fetchall()
        return any(issubclass(w.category, DeprecationWarning) for w in caught)
    except sqlite3.ProgrammingError:
        return True
    finally:
        conn.close()


class _ApswDriver(_Driver):
    name = "apsw"

    def __init__(self) -> None:
        try:
            import apsw
        except ImportError as exc:
            raise StorageError(
                "driver='apsw' needs the apsw package: pip install 'jobq[apsw]'"
            ) from exc
        self._apsw = apsw
        number = apsw.SQLITE_VERSION_NUMBER
        self.version = (number // 1_000_000, number // 1000 % 1000, number % 1000)
        self.errors = (apsw.Error,)
        self.constraint_errors = (apsw.ConstraintError,)

    def connect(self, path: str, busy_timeout_ms: int) -> Any:
        apsw = self._apsw
        conn = apsw.Connection(
            path,
            flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE,
            statementcachesize=_STATEMENT_CACHE,
        )
        conn.set_busy_handler(_busy_waiter(busy_timeout_ms / 1000))
        return conn

    def query(self, conn: Any, sql: str, params: Sequence[Any]) -> list[Row]:
        return list(conn.execute(sql, params))

    def run(self, conn: Any, sql: str, params: Sequence[Any]) -> int:
        conn.execute(sql, params)  # a statement without RETURNING runs to completion here
        changes: int = conn.changes()
        return changes

    def run_many(self, conn: Any, sql: str, seq: Iterable[Sequence[Any]]) -> int:
        # changes() per statement: total_changes() would also count rows changed by triggers.
        count = 0
        for params in seq:
            conn.execute(sql, params)
            count += conn.changes()
        return count

    def is_busy(self, exc: BaseException) -> bool:
        return isinstance(exc, (self._apsw.BusyError, self._apsw.LockedError))


BUSY_SLEEP_FIRST = 0.0001
BUSY_SLEEP_MAX = 0.002


def _busy_waiter(timeout: float) -> Callable[[int], bool]:
    """A busy handler waiting up to ``timeout`` seconds for another writer, in short
    sleeps: 0.1 ms doubling to 2 ms.

    SQLite's own (``busy_timeout``) sleeps 1, 2, 5, 10, 15, 20, 25 ms ... between
    tries: when several processes take turns with short write transactions (a
    worker pool's claims and completions last about a millisecond), a waiter
    slept far past the moment the lock came free, and the file's writers spent
    most of their time asleep rather than adding throughput."""
    began = 0.0

    def wait(tries: int) -> bool:
        nonlocal began
        now = time.monotonic()
        if tries == 0:
            began = now
        elif now - began >= timeout:
            return False
        time.sleep(min(BUSY_SLEEP_MAX, BUSY_SLEEP_FIRST * 2 ** min(tries, 16)))
        return True

    return wait


_SQLITE3_DRIVER: _Sqlite3Driver | None = None


def apsw_installed() -> bool:
    """Whether the apsw package can be imported (the ``jobq[apsw]`` extra)."""
    try:
        import apsw  # noqa: F401
    except ImportError:
        return False
    return True


def make_driver(name: str) -> _Driver:
    """The adapter for ``"sqlite3"``, ``"apsw"`` or ``"auto"`` (apsw when it is
    installed: its bundled SQLite is free of the WAL-reset bug, else sqlite3);
    ValueError for anything else."""
    if name == "auto":
        name = "apsw" if apsw_installed() else "sqlite3"
    if name == "sqlite3":
        global _SQLITE3_DRIVER
        if _SQLITE3_DRIVER is None:
            positional = _numbered_placeholders_warn()
            _SQLITE3_DRIVER = _Sqlite3PositionalDriver() if positional else _Sqlite3Driver()
        return _SQLITE3_DRIVER
    if name == "apsw":
        return _ApswDriver()
    raise ValueError(f"driver must be 'auto', 'sqlite3' or 'apsw', got {name!r}")


# The process id as of the last fork, checked before every statement without a
# system call; Database.conn() calls current_pid() once per operation.
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def current_pid() -> int:
    """This process's id (a system call; it also refreshes the cached id that
    each statement checks, in case a fork bypassed Python's fork hooks)."""
    pid = os.getpid()
    if pid != _pid:
        _forked()
    return pid


class Connection:
    """One driver connection, bound to the process (and by convention the thread)
    that opened it: using it in another process raises :class:`WrongProcessError`."""

    __slots__ = ("driver", "pid", "raw")

    def __init__(self, driver: _Driver, raw: Any) -> None:
        self.driver = driver
        self.raw = raw
        self.pid = _pid

    def _check(self) -> None:
        if self.pid != _pid:
            raise WrongProcessError(self.pid, _pid)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        if self.pid != _pid:
            self._check()
        return self.driver.query(self.raw, sql, params)

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        if self.pid != _pid:
            self._check()
        return self.driver.run(self.raw, sql, params)

    def run_many(self, sql: str, seq: Iterable[Sequence[Any]]) -> int:
        self._check()
        return self.driver.run_many(self.raw, sql, seq)

    BEGIN_WRITE = "BEGIN IMMEDIATE"
    """How write transactions start. IMMEDIATE takes the write lock up front; the
    reliability suite sets "BEGIN DEFERRED" in a child process to show the
    "database is locked" errors that a read lock upgraded mid-transaction gives."""

    def begin_immediate(self) -> None:
        """Take the write lock now, retrying (bounded) if SQLite is still busy
        after its own busy timeout."""
        self._check()
        driver, raw, begin = self.driver, self.raw, self.BEGIN_WRITE
        try:
            driver.run(raw, begin, ())
        except driver.errors as exc:
            if not driver.is_busy(exc):
                raise
            retry_busy(driver, lambda: driver.run(raw, begin, ()))

    def rollback_quietly(self) -> None:
        """Roll back if a transaction is open; a failure here must not hide the
        error that caused the rollback."""
        with contextlib.suppress(*self.driver.errors):
            self.driver.run(self.raw, "ROLLBACK", ())

    def close(self) -> None:
        self._check()
        self.driver.close(self.raw)


def retry_busy(driver: _Driver, fn: Callable[[], T]) -> T:
    """Run ``fn``, again up to :data:`BUSY_RETRIES` times while SQLite reports busy.

    SQLite's busy handler already waited ``busy_timeout``; a few statements
    (journal mode changes, WAL recovery) can still report busy at once, so the
    retries back off briefly (at most about 0.3 s in all).
    """
    for attempt in range(BUSY_RETRIES + 1):
        try:
            return fn()
        except driver.errors as exc:
            if not driver.is_busy(exc) or attempt == BUSY_RETRIES:
                raise
        time.sleep(0.01 * 2**attempt)
    raise AssertionError("unreachable")
