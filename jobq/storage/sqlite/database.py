"""One SQLite file seen from one process: a connection per thread, transactions.

A connection is opened lazily by each thread that needs one and remembered in
a :class:`threading.local`, together with the process id that opened it; the
connections of threads that have ended are closed when another is opened.
Right after ``fork()`` the child closes the connections it inherited, before it
can open its own (SQLite's per-process lock records would otherwise say the
parent's locks are held, the child would take none, and the parent's last close
would delete the WAL under it). One inside a transaction at the fork is abandoned.

Rule: imports the driver adapter, the schema and the storage contract; knows
nothing of jobs beyond the two helpers every part uses (:meth:`Database.query`,
:meth:`Database.modify`).
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Literal

from ..base import StorageError
from .driver import Connection, Row, current_pid, make_driver, retry_busy
from .schema import check_local_filesystem, configure, migrate

# Connections inherited across fork() stay referenced here so they are never
# closed, not even by the garbage collector.
_ABANDONED: list[Connection] = []

_DATABASES: weakref.WeakSet[Database] = weakref.WeakSet()  # for the fork hook


def _after_fork_in_child() -> None:
    for db in list(_DATABASES):
        db._drop_inherited()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

# Which driver each open file uses in this process, and how many Database
# objects hold it. sqlite3 and apsw carry two copies of the SQLite library, and
# two copies in one process do not see each other's POSIX locks: both could
# write at once and corrupt the file.
_DRIVER_BY_FILE: dict[str, tuple[str, int]] = {}
_DRIVER_BY_FILE_LOCK = threading.Lock()


def _hold_file(key: str, driver: str) -> None:
    with _DRIVER_BY_FILE_LOCK:
        held, count = _DRIVER_BY_FILE.get(key, (driver, 0))
        if held != driver:
            raise StorageError(
                f"{key!r} is already open with driver={held!r} in this process; open it with "
                f"that driver (two SQLite libraries in one process ignore each other's locks "
                "and can corrupt the file)"
            )
        _DRIVER_BY_FILE[key] = (driver, count + 1)


def _driver_holding(key: str) -> str | None:
    with _DRIVER_BY_FILE_LOCK:
        held = _DRIVER_BY_FILE.get(key)
    return None if held is None else held[0]


def _release_file(key: str) -> None:
    with _DRIVER_BY_FILE_LOCK:
        driver, count = _DRIVER_BY_FILE.get(key, ("", 1))
        if count <= 1:
            _DRIVER_BY_FILE.pop(key, None)
        else:
            _DRIVER_BY_FILE[key] = (driver, count - 1)


Synchronous = Literal["NORMAL", "FULL"]
CheckpointMode = Literal["PASSIVE", "FULL", "RESTART", "TRUNCATE"]


def describe_error(path: str, exc: BaseException) -> str:
    """A driver error in words that say where, and for the disk's own troubles, what
    to look at. Nothing of the failed transaction was kept."""
    text = str(exc)
    hint = ""
    lowered = text.lower()
    if "disk i/o" in lowered or "full" in lowered:
        hint = " (is the disk full, or a file size limit reached?)"
    elif "readonly" in lowered or "read-only" in lowered:
        hint = " (can this process write the file and its folder?)"
    return f"SQLite error on {path!r}: {text}{hint}; the operation was not applied"


DEFAULT_FILE_MODE = 0o600
"""Permissions of a database file jobq creates: its owner's only. Job arguments
(tokens, addresses) are in it; SQLite gives its ``-wal`` and ``-shm`` files the
same permissions."""


def folder_mode(file_mode: int) -> int:
    """The permissions of a folder jobq creates for a file of ``file_mode``: the same
    people may enter it (``0o600`` gives ``0o700``, ``0o660`` gives ``0o770``)."""
    return file_mode | (file_mode & 0o444) >> 2


def create_parent_folders(path: str, file_mode: int) -> None:
    """Create the missing folders above ``path``, each with exactly
    :func:`folder_mode` permissions (``0o700`` by default: job arguments live in
    the file). Folders that exist keep their mode; several processes creating the
    same folder at once is fine. Raises :class:`StorageError` naming the folder
    that could not be made."""
    missing: list[str] = []
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    mode = folder_mode(file_mode)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, mode)
        except FileExistsError:  # made meanwhile by another process, or not a folder
            if os.path.isdir(folder):
                continue
            raise StorageError(
                f"cannot open SQLite database {path!r}: {folder!r} exists and is not a folder"
            ) from None
        except OSError as exc:
            raise StorageError(
                f"cannot open SQLite database {path!r}: cannot create the folder "
                f"{folder!r}: {exc.strerror}"
            ) from exc
        os.chmod(folder, mode)  # exactly what was asked, whatever the umask


def create_private(path: str, file_mode: int) -> None:
    """Create ``path`` empty with exactly ``file_mode`` permissions if it does not
    exist, before SQLite opens it; an existing file keeps its own.

    SQLite would create it with 0644 less the umask (readable by every local
    user), and the ``-wal`` and ``-shm`` files copy the main file's permissions.
    The file is made here, not under a umask, as a umask is process-wide and
    other threads may be creating files. SQLite takes an empty file for a new
    database; several processes racing to create it is fine (``O_EXCL``: one
    creates, the others find it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, file_mode)
    except FileExistsError:
        return
    except OSError as exc:
        raise StorageError(
            f"cannot open SQLite database {path!r}: cannot create the file: {exc.strerror}"
        ) from exc
    try:
        os.fchmod(fd, file_mode)  # exactly what was asked, whatever the umask
    finally:
        os.close(fd)


class Database:
    """Connections to one file for the current process, and transactions on them."""

    def __init__(
        self,
        path: str,
        *,
        driver: str,
        synchronous: Synchronous,
        busy_timeout: float,
        journal_size_limit: int,
        file_mode: int = DEFAULT_FILE_MODE,
    ) -> None:
        if path in ("", ":memory:") or path.startswith("file::memory:"):
            raise ValueError(
                f"path must name a database file, got {path!r}; "
                "an in-memory database is private to one connection"
            )
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
        if not (busy_timeout >= 0 and math.isfinite(busy_timeout)):
            raise ValueError(f"busy_timeout must be a number of seconds >= 0, got {busy_timeout!r}")
        if (
            isinstance(journal_size_limit, bool)
            or not isinstance(journal_size_limit, int)
            or journal_size_limit < -1
        ):
            raise ValueError(
                f"journal_size_limit must be an integer >= -1, got {journal_size_limit!r}"
            )
        if (
            isinstance(file_mode, bool)
            or not isinstance(file_mode, int)
            or not (0 <= file_mode <= 0o777)
        ):
            raise ValueError(
                f"file_mode must be permission bits from 0o000 to 0o777, got {file_mode!r}"
            )
        if not file_mode & 0o600 == 0o600:
            raise ValueError(
                f"file_mode must let the owner read and write the database, got {file_mode:#o}"
            )
        check_local_filesystem(path)
        if driver == "auto":  # follow this process's other opening of the file, if any
            driver = _driver_holding(os.path.realpath(path)) or driver
        self.driver = make_driver(driver)
        create_parent_folders(path, file_mode)
        create_private(path, file_mode)
        self.path = path
        self.synchronous: Synchronous = synchronous
        self.busy_timeout_ms = int(busy_timeout * 1000)
        self.journal_size_limit = journal_size_limit
        self.errors = self.driver.errors
        self.constraint_errors = self.driver.constraint_errors
        self.returning = self.driver.version >= (3, 35, 0)
        """Whether UPDATE/INSERT ... RETURNING is available (SQLite >= 3.35)."""
        self.before_commit: list[Callable[[Connection], Callable[[], None] | None]] = []
        """Each runs inside every write transaction just before its COMMIT (a part
        that must finish what triggers started, in the same transaction); the
        callable one returns, if any, runs after the commit."""
        self._local = threading.local()
        self._lock = threading.Lock()
        # Every connection this object opened, with the thread it belongs to.
        self._connections: list[tuple[threading.Thread, Connection]] = []
        self._closed = False
        self._file_key = os.path.realpath(path)
        _hold_file(self._file_key, self.driver.name)
        _DATABASES.add(self)

    def _drop_inherited(self) -> None:
        """In a just-forked child: close the parent's connections, abandoning any
        inside a transaction (its rollback would write to the shared WAL index)."""
        self._lock = threading.Lock()  # another thread may have held it at the fork
        inherited, self._connections = self._connections, []
        self._local = threading.local()
        for _, conn in inherited:
            if conn.raw.in_transaction:  # sqlite3 and apsw both have it
                _ABANDONED.append(conn)
                continue
            try:
                self.driver.close(conn.raw)
            except self.errors:
                _ABANDONED.append(conn)

    def conn(self) -> Connection:
        """This thread's connection in this process, opened if needed."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.pid == current_pid():
            return conn
        return self._open()

    def _open(self) -> Connection:
        pid = current_pid()
        with self._lock:
            if self._closed:
                raise StorageError("this storage is closed; open a new one")
            keep, finished = [], []
            for thread, conn in self._connections:
                if conn.pid != pid:  # we are in a forked child
                    _ABANDONED.append(conn)
                elif thread.is_alive():
                    keep.append((thread, conn))
                else:  # threads come and go (one per request in some servers)
                    finished.append(conn)
            self._connections = keep
        for conn in finished:
            conn.close()
        driver = self.driver
        try:
            raw = retry_busy(driver, lambda: driver.connect(self.path, self.busy_timeout_ms))
        except driver.errors as exc:
            raise StorageError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        conn = Connection(driver, raw)
        try:
            configure(
                conn, synchronous=self.synchronous, journal_size_limit=self.journal_size_limit
            )
            migrate(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, driver.errors):
                raise StorageError(f"cannot prepare SQLite database {self.path!r}: {exc}") from exc
            raise
        with self._lock:
            self._connections.append((threading.current_thread(), conn))
        self._local.conn = conn
        return conn

    def write(self, *, durable: bool = True) -> _WriteTransaction:
        """One write transaction: ``with db.write() as conn:`` runs BEGIN IMMEDIATE,
        then COMMIT, or ROLLBACK on error. Driver errors come out as :class:`StorageError`.
        ``durable=False``: no fsync at this commit even with synchronous FULL (for
        writes whose loss after a power cut only means a job runs again, e.g. claims);
        the next durable commit syncs it with its own."""
        return _WriteTransaction(self, relaxed=not durable and self.synchronous == "FULL")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One read transaction: a consistent snapshot across several queries."""
        conn = self.conn()
        try:
            retry_busy(self.driver, lambda: conn.run("BEGIN"))
            yield conn
            conn.run("COMMIT")
        except BaseException as exc:
            conn.rollback_quietly()
            if isinstance(exc, self.errors):
                raise StorageError(describe_error(self.path, exc)) from exc
            raise

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """A read outside any transaction (one statement sees one snapshot)."""
        conn = self.conn()
        try:
            return retry_busy(self.driver, lambda: conn.query(sql, params))
        except self.errors as exc:
            raise StorageError(describe_error(self.path, exc)) from exc

    def modify(
        self, conn: Connection, sql: str, params: Sequence[Any], returning: str, job_id: int
    ) -> list[Row]:
        """Run an UPDATE of at most the row ``job_id`` in ``conn``'s transaction and
        return its ``returning`` columns if it changed (RETURNING where SQLite has
        it, else a SELECT after)."""
        if self.returning:
            return conn.query(f"{sql} RETURNING {returning}", params)
        if conn.run(sql, params) == 0:
            return []
        return conn.query(f"SELECT {returning} FROM jobs WHERE id = ?", (job_id,))

    def checkpoint(self, mode: CheckpointMode) -> tuple[int, int, int]:
        """``PRAGMA wal_checkpoint(mode)``; returns ``(busy, wal_pages, checkpointed)``."""
        if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
            raise ValueError(f"mode must be PASSIVE, FULL, RESTART or TRUNCATE, got {mode!r}")
        conn = self.conn()
        try:
            busy, wal_pages, checkpointed = conn.query(f"PRAGMA wal_checkpoint({mode})")[0]
        except self.errors as exc:
            raise StorageError(f"checkpoint of {self.path!r} failed: {exc}") from exc
        return int(busy), int(wal_pages), int(checkpointed)

    def close(self) -> None:
        """Close every connection this process opened, from any thread. Idempotent."""
        pid = current_pid()
        with self._lock:
            if not self._closed:
                _release_file(self._file_key)
            self._closed = True
            mine = [c for _, c in self._connections if c.pid == pid]
            self._connections = []
            self._local = threading.local()
        for conn in mine:
            conn.close()


class _WriteTransaction:
    """The context manager :meth:`Database.write` returns (a class rather than a
    generator: it runs twice per job on the hot path)."""

    __slots__ = ("conn", "db", "relaxed")

    def __init__(self, db: Database, relaxed: bool = False) -> None:
        self.db = db
        self.relaxed = relaxed

    def __enter__(self) -> Connection:
        conn = self.conn = self.db.conn()
        if self.relaxed:
            conn.run("PRAGMA synchronous = NORMAL")
        try:
            conn.begin_immediate()
        except self.db.errors as exc:
            if self.relaxed:
                conn.run("PRAGMA synchronous = FULL")
            raise StorageError(f"could not take the write lock on {self.db.path!r}: {exc}") from exc
        return conn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        conn = self.conn
        try:
            if exc is None:
                try:
                    after = [a for finish in self.db.before_commit if (a := finish(conn))]
                    conn.run("COMMIT")
                except self.db.errors as error:
                    exc = error
                except BaseException:
                    conn.rollback_quietly()
                    raise
                else:
                    for then in after:
                        then()
                    return
            conn.rollback_quietly()
        finally:
            if self.relaxed:
                conn.run("PRAGMA synchronous = FULL")
        if isinstance(exc, self.db.errors):
            raise StorageError(describe_error(self.db.path, exc)) from exc
