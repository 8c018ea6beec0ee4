"""PostgresStorage: the :class:`~jobq.storage.base.Storage` contract on PostgreSQL.

For apps that run workers on several hosts. Needs the ``jobq[postgres]`` extra
(psycopg 3 and psycopg_pool) and PostgreSQL 13 or newer.

- **Claims** are one statement: ``SELECT ... FOR UPDATE SKIP LOCKED`` picks
  runnable jobs by priority then run time off a partial index, and the same
  ``UPDATE`` sets their leases. Workers never wait on each other's rows.
- **Time** comes from the database server's clock by default
  (``clock="database"``): leases, delays without an explicit time, and rescues
  all compare server times, so hosts whose clocks disagree never take each
  other's live jobs. ``clock="caller"`` uses the ``now`` each call passes, as
  SQLite does (for tests that drive time).
- **Wake-ups**: every enqueue sends ``NOTIFY jobq_jobs`` with the queue name in
  its transaction;
  worker pools ``LISTEN`` and look for work at once, on any host. Polling
  remains as the fallback.
- **Stats** never count the jobs table: statement-level triggers append each
  statement's changes per queue and status to ``jobq_job_counts`` (no row that
  every writer must lock), stats sum those rows, and rescue, purge and a stats
  read that found many rows fold them into one per queue and status.
- **Migrations** run under an advisory lock, so hosts starting together take
  turns and each step is applied once.
- **Processes**: each process opens its own connection pool; a storage object
  used after ``fork()`` opens a new one in the child and never touches the
  parent's connections.

The class is composed of parts, each a module of this package: connections
(:mod:`.connection`), the schema and its migrations (:mod:`.schema`), the SQL
text (:mod:`.sql`), new jobs (:mod:`.inserts`), leases (:mod:`.leases`),
administration (:mod:`.admin`), schedules (:mod:`.schedules`), live worker pools
(:mod:`.workers`), wake-ups (:mod:`.listener`) and jobs written through the app's
own connection (:mod:`.external`). Arguments are
checked once, above them, by :class:`~jobq.storage.checked.CheckedStorage`.

Rule: imports its own parts, the checking layer and the storage contract.
"""

from __future__ import annotations

from collections.abc import Callable

from ...validate import check_seconds
from ..checked import CheckedStorage
from ..listening import ProcessListener
from .admin import PostgresAdmin
from .batches import PostgresBatches
from .bulk import PostgresBulk
from .connection import Clock, Database, redacted
from .dependencies import PostgresDependencies
from .external import PostgresExternal
from .history import PostgresHistory
from .inserts import PostgresInserts
from .job_logs import PostgresJobLogs
from .leases import PostgresLeases
from .listener import Listener
from .schedules import PostgresSchedules
from .schema import migrate
from .workers import PostgresWorkers

__all__ = ["PostgresStorage"]


class PostgresStorage(CheckedStorage):
    """Jobs in a PostgreSQL database, shared by every process on every host.

    ::

        storage = PostgresStorage("postgresql://app@db.internal/app")
        queue = jobq.DurableQueue(storage)      # or DurableQueue("postgresql://...")

    :param url: a libpq connection string or ``postgresql://`` URL.
    :param clock: ``"database"`` (default): times come from the server's clock
        and the ``now`` arguments are ignored; ``"caller"``: the ``now`` passed
        to each call is used, as with SQLite.
    :param min_connections: connections the pool keeps open (default 1).
    :param max_connections: most connections this process opens (default 10).
    :param connect_timeout: seconds to wait for a connection (default 10).

    Tables (``jobq_jobs``, ``jobq_job_logs``, ``jobq_paused_queues``, ``jobq_schema``,
    ...) are created in the connection's schema (``search_path``) by the constructor. Raises
    :class:`~jobq.storage.base.StorageError` if the server cannot be reached,
    :class:`~jobq.storage.base.SchemaVersionError` if a newer jobq wrote it.
    Use as a context manager, or call :meth:`close`. The methods are documented
    on :class:`~jobq.storage.base.Storage`.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock = "database",
        min_connections: int = 1,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
    ) -> None:
        if clock not in ("database", "caller"):
            raise ValueError(f"clock must be 'database' or 'caller', got {clock!r}")
        if not 0 <= min_connections <= max_connections or max_connections < 1:
            raise ValueError(
                "need 0 <= min_connections <= max_connections and max_connections >= 1, got "
                f"{min_connections} and {max_connections}"
            )
        check_seconds("connect_timeout", connect_timeout)
        self.url = url
        self.clock = clock
        self._db = Database(
            url,
            clock=clock,
            min_size=min_connections,
            max_size=max_connections,
            timeout=connect_timeout,
        )
        self._inserts = PostgresInserts(self._db)
        self._leases = PostgresLeases(self._db)
        self._admin = PostgresAdmin(self._db)
        self._schedules = PostgresSchedules(self._db)
        self._workers = PostgresWorkers(self._db)
        self._job_logs = PostgresJobLogs(self._db)
        self._bulk = PostgresBulk(self._db)
        self._history = PostgresHistory(self._db)
        self._batches = PostgresBatches(self._db)
        self._dependencies = PostgresDependencies(self._db)
        self._external = PostgresExternal(self._db)
        self._listener = ProcessListener(lambda: Listener(self._db.url))
        with self._db.connect(autocommit=True) as conn:
            migrate(conn)

    def subscribe(self, callback: Callable[[str | None], None]) -> Callable[[], None]:
        """Call ``callback(queue_name)`` when any process enqueues a job (through
        LISTEN/NOTIFY, on a connection of its own), and ``callback(None)`` when
        notifications may have been missed (on (re)connecting); returns the function
        that unsubscribes. The listening thread runs while anyone is subscribed."""
        self._db.pool()  # refuses a closed storage
        return self._listener.subscribe(callback)

    def close(self) -> None:
        self._listener.close()
        self._db.close()

    def __repr__(self) -> str:
        return f"PostgresStorage({redacted(self.url)!r}, clock={self.clock!r})"
