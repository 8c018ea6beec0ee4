"""SQLiteStorage: the :class:`~jobq.storage.base.Storage` contract on one SQLite file.

Several processes (gunicorn workers, a worker process, the ``flask jobq`` CLI)
may open the same file. Each process opens its own connections, one per thread
(closed once that thread has ended, or by :meth:`SQLiteStorage.close`); after
``fork()`` the child opens new ones and never touches the parent's. Within one
process a file must be opened with one driver only (enforced): ``sqlite3`` and
``apsw`` carry separate copies of SQLite, which do not see each other's locks.

How it stays out of "database is locked": the file is in WAL mode (readers
never block the writer), every write transaction starts with ``BEGIN
IMMEDIATE`` (it takes the write lock up front, so it never has to upgrade a
read lock and fail), ``busy_timeout`` makes SQLite wait for the lock, and the
rare busy that remains is retried a bounded number of times before
:class:`~jobq.storage.base.StorageError` is raised.

Durability (``synchronous=``):

- ``"NORMAL"`` (default): a committed job survives a crash of the process,
  including ``kill -9``. After a power loss or OS crash the last transactions
  committed before it may be lost (the database stays consistent).
- ``"FULL"``: also survives power loss and OS crashes, at the cost of an
  fsync per commit (much slower on most disks).

The WAL is checkpointed into the database automatically every 1,000 pages;
:meth:`SQLiteStorage.checkpoint` runs one on demand (run ``"TRUNCATE"`` now
and then when readers are rarely idle and the WAL keeps growing), and
``journal_size_limit`` caps what is kept of the WAL file afterwards.

Cost: claims, renewals, rescue and unique-key checks are O(log n) in the
number of jobs (partial indexes hold only pending or processing rows), except
that a claim steps over not-yet-due jobs of a *higher* priority than the job
it takes. :meth:`SQLiteStorage.stats` reads counts kept per queue and status by
triggers, plus a few index seeks per queue: its cost follows the number of
queues and of jobs scheduled for later, not the size of the table.

The class is composed of parts, each a module of this package: the file and
its connections (:mod:`.database`, over the driver adapter :mod:`.driver` and
the schema :mod:`.schema`), and the parts that run SQL (:mod:`.sql`) for new
jobs (:mod:`.inserts`), leases (:mod:`.leases`), administration
(:mod:`.admin`), schedules (:mod:`.schedules`), the live worker pools
(:mod:`.workers`), job log lines (:mod:`.job_logs`), job history (:mod:`.history`)
and filters with bulk actions (:mod:`.bulk`). Arguments are checked
once, above them, by :class:`~jobq.storage.checked.CheckedStorage`.

Rule: imports its own parts, the checking layer and the storage contract.
"""

from __future__ import annotations

from pathlib import Path

from ..checked import CheckedStorage
from .admin import SQLiteAdmin
from .bulk import SQLiteBulk
from .database import DEFAULT_FILE_MODE, CheckpointMode, Database, Synchronous
from .driver import DriverName
from .history import SQLiteHistory
from .inserts import SQLiteInserts
from .job_logs import SQLiteJobLogs
from .leases import SQLiteLeases
from .schedules import SQLiteSchedules
from .schema import affected_by_wal_reset_bug
from .sharing import other_processes
from .workers import SQLiteWorkers

__all__ = ["SQLiteStorage"]


class SQLiteStorage(CheckedStorage):
    """Jobs in a SQLite database file, shared safely by threads and processes.

    :param path: the database file; created (with its schema) if missing, and so
        are missing folders above it (``0o700``, or what ``file_mode`` lets others
        do: ``0o660`` gives ``0o770``; folders that exist keep their mode).
        ``":memory:"`` is refused: each thread would see its own database.
    :param driver: ``"auto"`` (default): ``"apsw"`` when the apsw package is
        installed (the ``jobq[apsw]`` extra, which bundles a recent SQLite: free
        of the WAL-reset bug, and faster for claims), else ``"sqlite3"`` (the
        standard library); or either one forced. A file already open in this
        process keeps its driver under ``"auto"``.
    :param synchronous: ``"NORMAL"`` (default) or ``"FULL"``; see the module
        docstring for what each survives.
    :param busy_timeout: seconds SQLite waits for another writer's lock before
        reporting busy. Default 5.0; must be >= 0.
    :param journal_size_limit: bytes of WAL file kept after a checkpoint.
        Default 64 MiB; -1 for no limit.
    :param file_mode: permissions of the file if it is created here (its
        ``-wal`` and ``-shm`` files get the same). Default ``0o600``: job
        arguments are readable by the file's owner only. Give e.g. ``0o660``
        for processes of one group that run as different users; an existing
        file keeps its permissions. Must include ``0o600``.

    The file is opened, and pending schema migrations run, in the constructor
    (several processes may open a fresh file at once). Raises ValueError for
    bad options, :class:`~jobq.storage.base.SchemaVersionError` if the file
    was written by a newer jobq, :class:`~jobq.storage.base.StorageError` if
    it cannot be opened. Use as a context manager, or call :meth:`close`.
    The methods are documented on :class:`~jobq.storage.base.Storage`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        driver: DriverName = "auto",
        synchronous: Synchronous = "NORMAL",
        busy_timeout: float = 5.0,
        journal_size_limit: int = 64 * 1024 * 1024,
        file_mode: int = DEFAULT_FILE_MODE,
    ) -> None:
        self._db = Database(
            str(path),
            driver=driver,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            journal_size_limit=journal_size_limit,
            file_mode=file_mode,
        )
        self.path = self._db.path
        inserts = SQLiteInserts(self._db)
        self._inserts = inserts
        self._leases = SQLiteLeases(self._db)
        self._admin = SQLiteAdmin(self._db)
        self._schedules = SQLiteSchedules(self._db, inserts)
        self._workers = SQLiteWorkers(self._db)
        self._job_logs = SQLiteJobLogs(self._db)
        self._bulk = SQLiteBulk(self._db)
        self._history = SQLiteHistory(self._db)
        try:
            self._db.conn()  # open now: a bad path or schema shows up here
        except BaseException:
            self._db.close()
            raise

    @property
    def _returning(self) -> bool:
        """Whether statements use RETURNING (SQLite >= 3.35); the tests turn it off
        to run the path taken on older SQLite."""
        return self._db.returning

    @_returning.setter
    def _returning(self, value: bool) -> None:
        self._db.returning = value

    @property
    def driver(self) -> str:
        """``"sqlite3"`` or ``"apsw"``."""
        return self._db.driver.name

    @property
    def sqlite_version(self) -> tuple[int, int, int]:
        """Version of the SQLite library the driver uses."""
        return self._db.driver.version

    @property
    def affected_by_wal_reset_bug(self) -> bool:
        """True if this SQLite (3.7.0 to 3.51.2) has the WAL-reset bug that can
        corrupt a database written by several processes at once; ``driver="apsw"``
        bundles a fixed one."""
        return affected_by_wal_reset_bug(self._db.driver.version)

    def other_processes(self) -> set[int] | None:
        """Ids of the other processes that have this file open now (Linux, from
        ``/proc/locks``), or None where the system does not tell."""
        return other_processes(self.path)

    def checkpoint(self, mode: CheckpointMode = "PASSIVE") -> tuple[int, int, int]:
        """Copy the WAL into the database file now (``PRAGMA wal_checkpoint``).

        ``"PASSIVE"`` (default) never waits; ``"FULL"``, ``"RESTART"`` and
        ``"TRUNCATE"`` wait for other connections (up to ``busy_timeout``), the
        last two so the WAL starts over, TRUNCATE also shrinking the file to zero
        bytes. Returns SQLite's ``(busy, wal_pages, checkpointed_pages)``;
        ``busy`` is 1 if other connections kept it from finishing.
        """
        return self._db.checkpoint(mode)

    def close(self) -> None:
        self._db.close()

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r}, driver={self.driver!r})"
