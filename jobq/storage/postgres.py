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
  its transaction; worker pools ``LISTEN`` and look for work at once, on any
  host. Polling remains as the fallback.
- **Stats** never count the jobs table: statement-level triggers append each
  statement's changes per queue and status to ``jobq_job_counts`` (no row that
  every writer must lock), stats sum those rows, and rescue, purge and a stats
  read that found many rows fold them into one per queue and status.
- **Migrations** run under an advisory lock, so hosts starting together take
  turns and each step is applied once.
- **Processes**: each process opens its own connection pool; a storage object
  used after ``fork()`` opens a new one in the child and never touches the
  parent's connections.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from ..validate import check_seconds, check_time
from . import _postgres_sql as sql
from ._checks import (
    check_json,
    check_list_limit,
    check_new,
    check_purge,
    check_queues,
)
from ._limits import Allowance, check_limits, rate_windows
from ._rows import COLS, STATUS, job_filters, row_to_job, schedule_state, stats_from_rows
from .base import (
    MAX_PAUSED_QUEUES,
    Completion,
    Enqueued,
    Job,
    JobError,
    JobStatus,
    NewJob,
    RenewResult,
    RescueResult,
    ScheduleState,
    SchemaVersionError,
    Stats,
    StorageError,
    TaskLimit,
    TooManyPausedQueues,
    UniqueKeyConflict,
)

try:
    import psycopg
    import psycopg.errors
    from psycopg import pq
    from psycopg_pool import ConnectionPool
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "PostgreSQL storage needs psycopg 3 and psycopg_pool: pip install 'jobq[postgres]'"
    ) from exc

if TYPE_CHECKING:
    Params = dict[str, Any] | Sequence[Any]

__all__ = ["PostgresStorage"]

_STATUS_COLUMNS = tuple(enumerate(("pending", "processing", "completed", "failed",
                                    "cancelled"), 1))  # as sql.STATS_QUEUES has them
_RETRIES = 5  # deadlocks and serialization failures are retried this many times


class PostgresStorage:
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

    Tables (``jobq_jobs``, ``jobq_paused_queues``, ``jobq_schema``) are created
    in the connection's schema (``search_path``) by the constructor. Raises
    :class:`~jobq.storage.base.StorageError` if the server cannot be reached,
    :class:`~jobq.storage.base.SchemaVersionError` if a newer jobq wrote it.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Literal["database", "caller"] = "database",
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
        self._min = min_connections
        self._max = max_connections
        self._timeout = connect_timeout
        self._lock = threading.Lock()
        self._pool: ConnectionPool | None = None
        self._pid = os.getpid()
        self._inherited: list[object] = []  # a parent's pools, kept so GC never closes them
        self._closed = False
        self._listener: _Listener | None = None
        self._migrate()

    # -- connections -------------------------------------------------------------------

    def _connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, connect_timeout=max(1, round(self._timeout)),
                                   **kwargs)  # fmt: skip
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to PostgreSQL: {exc}".strip()) from exc

    def _migrate(self) -> None:
        with self._connect(autocommit=True) as conn:
            try:
                found = conn.execute("SELECT version FROM jobq_schema").fetchone()
            except psycopg.errors.UndefinedTable:
                found = None
            if found is not None and found[0] == sql.SCHEMA_VERSION:
                return
            if found is not None and found[0] > sql.SCHEMA_VERSION:
                raise SchemaVersionError(found[0], sql.SCHEMA_VERSION)
            with conn.transaction():
                # Hosts starting at once queue up here; each re-reads the version.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (sql.MIGRATION_LOCK,))
                conn.execute("CREATE TABLE IF NOT EXISTS jobq_schema (version integer NOT NULL)")
                row = conn.execute("SELECT version FROM jobq_schema").fetchone()
                version = 0 if row is None else int(row[0])
                if version > sql.SCHEMA_VERSION:
                    raise SchemaVersionError(version, sql.SCHEMA_VERSION)
                for step in range(version, sql.SCHEMA_VERSION):
                    for statement in sql.MIGRATIONS[step]:
                        conn.execute(statement)
                if row is None:
                    conn.execute("INSERT INTO jobq_schema (version) VALUES (%s)",
                                 (sql.SCHEMA_VERSION,))  # fmt: skip
                else:
                    conn.execute("UPDATE jobq_schema SET version = %s", (sql.SCHEMA_VERSION,))

    def _get_pool(self) -> ConnectionPool:
        pid = os.getpid()
        pool = self._pool
        if pool is not None and self._pid == pid:
            return pool
        with self._lock:
            if self._closed:
                raise StorageError("this PostgresStorage was closed")
            if self._pid != pid:
                # Forked: the parent's sockets are not ours to use or to close.
                self._inherited.append(self._pool)
                self._inherited.append(self._listener)
                self._pool = None
                self._listener = None
                self._pid = pid
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.url, min_size=self._min, max_size=self._max, timeout=self._timeout,
                    kwargs={"autocommit": True}, name=f"jobq-postgres-{pid}", open=True,
                )  # fmt: skip
            return self._pool

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._get_pool().connection() as conn:
                yield conn
        except (psycopg.errors.UniqueViolation, StorageError):
            raise
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL error: {exc}".strip()) from exc
        except Exception as exc:  # the pool's own errors (timeouts, closed pool)
            if type(exc).__module__.startswith("psycopg_pool"):
                raise StorageError(f"PostgreSQL connection pool: {exc}".strip()) from exc
            raise

    def _run(self, statement: str, params: Params, *, transaction: bool = False) -> list[Any]:
        """Run one statement (in its own transaction) and return its rows, retrying
        the deadlocks and serialization failures concurrent writers can cause."""
        for attempt in range(_RETRIES):
            try:
                with self._conn() as conn:
                    cursor = conn.execute(statement, params)
                    result = cursor.pgresult
                    if result is None or result.status != pq.ExecStatus.TUPLES_OK:
                        return []
                    return cursor.fetchall()
            except StorageError as exc:
                if attempt + 1 < _RETRIES and isinstance(
                    exc.__cause__,
                    psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure,
                ):
                    continue
                raise
        raise AssertionError("unreachable")

    def _rowcount(self, statement: str, params: Params) -> int:
        with self._conn() as conn:
            return conn.execute(statement, params).rowcount

    def _now(self, now: float) -> float | None:
        """The ``now`` parameter of a statement: None makes it read the server clock."""
        check_time("now", now)
        return None if self.clock == "database" else float(now)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
            listener, self._listener = self._listener, None
            mine = self._pid == os.getpid()
        if mine and listener is not None:
            listener.stop()
        if mine and pool is not None:
            pool.close()

    def __enter__(self) -> PostgresStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStorage({_redacted(self.url)!r}, clock={self.clock!r})"

    # -- wake-ups ----------------------------------------------------------------------

    def subscribe(self, callback: Callable[[str | None], None]) -> Callable[[], None]:
        """Call ``callback(queue_name)`` when any process enqueues a job (through
        LISTEN/NOTIFY, on a connection of its own), and ``callback(None)`` when
        notifications may have been missed (on (re)connecting); returns the function
        that unsubscribes. The listening thread runs while anyone is subscribed."""
        self._get_pool()  # settles which process we are in
        with self._lock:
            if self._listener is None:
                self._listener = _Listener(self)
            listener = self._listener
        listener.add(callback)
        return lambda: listener.remove(callback)

    # -- enqueue -----------------------------------------------------------------------

    def enqueue(self, job: NewJob, *, now: float) -> Enqueued:
        check_new(job, None)
        params = {
            "queue": job.queue, "name": job.name, "payload": job.payload,
            "priority": job.priority, "max_attempts": job.max_attempts, "run_at": job.run_at,
            "unique_key": job.unique_key, "now": self._now(now),
        }  # fmt: skip
        for _ in range(_RETRIES):
            rows = self._run(sql.ENQUEUE, params)
            if rows:
                job_id, run_at, created_at = rows[0][:3]
                return Enqueued(Job(
                    job_id, job.queue, job.name, job.payload, job.priority, JobStatus.PENDING,
                    0, job.max_attempts, run_at, None, None, None, None, None, None,
                    job.unique_key, False, created_at, None, None, created_at,
                ), True)  # fmt: skip
            # The key is held by a live job; it may finish before we read it.
            found = self._run(sql.LIVE_BY_KEY, (job.name, job.unique_key))
            if found:
                return Enqueued(row_to_job(found[0]), False)
        raise StorageError(f"unique_key {job.unique_key!r} kept changing hands; try again")

    def enqueue_many(self, jobs: Sequence[NewJob], *, now: float) -> list[int]:
        for index, job in enumerate(jobs):
            check_new(job, index)
        now_param = self._now(now)
        if not jobs:
            return []
        with self._conn() as conn, conn.transaction():
            ids = _insert_jobs(conn, jobs, now_param)
            conn.execute(sql.NOTIFY, (sorted({job.queue for job in jobs}),))
        return ids

    def enqueue_payloads(
        self, template: NewJob, payloads: Sequence[str], *, now: float
    ) -> list[int]:
        check_new(template._replace(payload=""), None)
        if template.unique_key is not None or not payloads:
            return self.enqueue_many([template._replace(payload=p) for p in payloads], now=now)
        for index, payload in enumerate(payloads):
            if type(payload) is not str:
                check_new(template._replace(payload=payload), index)  # raises TypeError
        rows = self._run(sql.ENQUEUE_PAYLOADS, {
            "queue": template.queue, "name": template.name, "priority": template.priority,
            "max_attempts": template.max_attempts, "run_at": template.run_at,
            "payloads": list(payloads), "now": self._now(now),
        })  # fmt: skip
        return list(rows[0][0])

    # -- leases ------------------------------------------------------------------------

    def claim(
        self,
        queues: Collection[str],
        *,
        owner: str,
        now: float,
        lease_seconds: float,
        limit: int = 1,
        limits: Mapping[str, TaskLimit] | None = None,
        limited_at_most: int | None = None,
    ) -> list[Job]:
        names = check_queues(queues)
        now_param = self._now(now)
        if not isinstance(owner, str):
            raise TypeError(f"owner must be a str, got {owner!r}")
        check_seconds("lease_seconds", lease_seconds)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValueError(f"limit must be an integer from 1 to 1000, got {limit!r}")
        if limits:
            check_limits(limits, limited_at_most)
        if not names:
            return []
        params = {"queues": names, "now": now_param, "limit": limit, "owner": owner,
                  "lease": float(lease_seconds)}  # fmt: skip
        if limits:
            rows = self._claim_limited(params, limits, limited_at_most)
        else:
            rows = self._run(sql.CLAIM, params)
        jobs = [row_to_job(row) for row in rows]
        jobs.sort(key=lambda j: (-j.priority, j.run_at, j.id))  # RETURNING has no order
        return jobs

    def _claim_limited(
        self, params: dict[str, Any], limits: Mapping[str, TaskLimit], at_most: int | None
    ) -> list[Any]:
        windows = rate_windows(limits)
        counted = sorted(name for name, limit in limits.items() if limit.concurrency)
        with self._conn() as conn, conn.transaction():
            # Claimers of limited tasks take turns (in a fixed order: no deadlocks).
            for key in sorted(set(counted) | {f"rate:{k}" for k in windows}):
                conn.execute(sql.LIMIT_LOCK, (key,))
            running = dict(conn.execute(sql.RUNNING_OF, (counted,)).fetchall())
            started: dict[str, int] = {}
            for key, (_, per) in windows.items():
                window = {"key": key, "per": per, "now": params["now"]}
                conn.execute(sql.FORGET_STARTS, window)
                started[key] = conn.execute(sql.COUNT_STARTS, window).fetchall()[0][0]
            allowance = Allowance(limits, running, started, at_most)
            candidates = conn.execute(
                sql.CANDIDATES, {**params, "blocked": allowance.blocked()}
            ).fetchall()
            chosen = allowance.take(candidates, 2, params["limit"])
            if not chosen:
                return []
            rows = conn.execute(sql.CLAIM_IDS, {**params, "ids": [r[0] for r in chosen]})
            claimed = rows.fetchall()
            if allowance.rate_starts:
                conn.execute(sql.RECORD_STARTS, {"keys": allowance.rate_starts,
                                                 "now": params["now"]})  # fmt: skip
        return claimed

    def has_runnable(self, queues: Collection[str], *, now: float) -> bool:
        names = check_queues(queues)
        now_param = self._now(now)
        if not names:
            return False
        return bool(self._run(sql.HAS_RUNNABLE, {"queues": names, "now": now_param})[0][0])

    def renew(
        self,
        leases: Collection[tuple[int, str]],
        *,
        now: float,
        lease_seconds: float,
    ) -> RenewResult:
        now_param = self._now(now)
        check_seconds("lease_seconds", lease_seconds)
        held = list(leases)
        if not held:
            return RenewResult(frozenset(), frozenset(), frozenset())
        rows = self._run(sql.RENEW, {
            "ids": [job_id for job_id, _ in held], "tokens": [token for _, token in held],
            "now": now_param, "lease": float(lease_seconds),
        })  # fmt: skip
        renewed = frozenset(row[0] for row in rows)
        cancel = frozenset(row[0] for row in rows if row[1])
        lost = frozenset(job_id for job_id, _ in held) - renewed
        return RenewResult(renewed, lost, cancel)

    def set_progress(self, job_id: int, lease_token: str, progress: str, *, now: float) -> bool:
        check_json("progress", progress)
        return self._rowcount(sql.PROGRESS, {
            "progress": progress, "now": self._now(now), "id": job_id, "token": lease_token,
        }) == 1  # fmt: skip

    def complete(
        self, job_id: int, lease_token: str, *, now: float, result: str | None = None
    ) -> bool:
        if result is not None:
            check_json("result", result)
        return self._rowcount(sql.COMPLETE, {
            "result": result, "now": self._now(now), "id": job_id, "token": lease_token,
        }) == 1  # fmt: skip

    def complete_many(self, completions: Sequence[Completion], *, now: float) -> list[bool]:
        now_param = self._now(now)
        for _, _, result in completions:
            if result is not None:
                check_json("result", result)
        if not completions:
            return []
        rows = self._run(sql.COMPLETE_MANY, {
            "ids": [c.job_id for c in completions],
            "tokens": [c.lease_token for c in completions],
            "results": [c.result for c in completions], "now": now_param,
        })  # fmt: skip
        done = {row[0] for row in rows}
        outcome = []
        for completion in completions:
            outcome.append(completion.job_id in done)
            done.discard(completion.job_id)  # a repeated entry did not complete it again
        return outcome

    def fail(
        self,
        job_id: int,
        lease_token: str,
        error: JobError,
        *,
        now: float,
        retry_at: float | None = None,
    ) -> JobStatus | None:
        if not isinstance(error, JobError):
            raise TypeError(f"error must be a JobError, got {error!r}")
        if retry_at is not None:
            check_time("retry_at", retry_at)
        rows = self._run(sql.FAIL, {
            "retry_at": retry_at, "now": self._now(now), "type": error.type,
            "message": error.message, "traceback": error.traceback, "id": job_id,
            "token": lease_token,
        })  # fmt: skip
        return STATUS[rows[0][0]] if rows else None

    def release(
        self, job_id: int, lease_token: str, *, now: float, run_at: float | None = None
    ) -> JobStatus | None:
        if run_at is not None:
            check_time("run_at", run_at)
        rows = self._run(sql.RELEASE, {
            "run_at": run_at, "now": self._now(now), "id": job_id, "token": lease_token,
        })  # fmt: skip
        return STATUS[rows[0][0]] if rows else None

    def finish_cancelled(self, job_id: int, lease_token: str, *, now: float) -> bool:
        return self._rowcount(sql.FINISH_CANCELLED, {
            "now": self._now(now), "id": job_id, "token": lease_token,
        }) == 1  # fmt: skip

    def rescue_expired(self, *, now: float, limit: int = 1000) -> RescueResult:
        now_param = self._now(now)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an integer of at least 1, got {limit!r}")
        rows = self._run(sql.RESCUE, {"now": now_param, "limit": limit})
        self._fold_counts()  # the maintenance every worker pool runs often
        outcome: dict[str, list[int]] = {"pending": [], "failed": [], "cancelled": []}
        for job_id, status in sorted(rows):
            outcome[status].append(job_id)
        return RescueResult(
            tuple(outcome["pending"]), tuple(outcome["failed"]), tuple(outcome["cancelled"])
        )

    # -- management --------------------------------------------------------------------

    def request_cancel(self, job_id: int, *, now: float) -> Job | None:
        rows = self._run(sql.CANCEL, {"now": self._now(now), "id": job_id})
        if not rows:
            rows = self._run(f"SELECT {COLS} FROM jobq_jobs WHERE id = %s", (job_id,))
        return row_to_job(rows[0]) if rows else None

    def retry(self, job_id: int, *, now: float, run_at: float | None = None) -> Job | None:
        now_param = self._now(now)
        if run_at is not None:
            check_time("run_at", run_at)
        try:
            rows = self._run(sql.RETRY, {"run_at": run_at, "now": now_param, "id": job_id})
        except psycopg.errors.UniqueViolation:
            name, key = self._run("SELECT name, unique_key FROM jobq_jobs WHERE id = %s",
                                  (job_id,))[0]  # fmt: skip
            holder = self._run(sql.LIVE_BY_KEY, (name, key))
            raise UniqueKeyConflict(key, holder[0][0] if holder else 0) from None
        if rows:
            self._run(sql.NOTIFY, ([rows[0][1]],))
        return row_to_job(rows[0]) if rows else None

    def get(self, job_id: int) -> Job | None:
        if isinstance(job_id, bool) or not isinstance(job_id, int) or not 0 < job_id < 2**63:
            return None
        rows = self._run(f"SELECT {COLS} FROM jobq_jobs WHERE id = %s", (job_id,))
        return row_to_job(rows[0]) if rows else None

    def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        queue: str | None = None,
        name: str | None = None,
        after_id: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[Job]:
        check_list_limit(limit)
        terms, params = job_filters(status, queue, name, after_id, newest_first, "%s")
        where = f"WHERE {' AND '.join(terms)} " if terms else ""
        order = "DESC" if newest_first else "ASC"
        statement = f"SELECT {COLS} FROM jobq_jobs {where}ORDER BY id {order} LIMIT %s"
        return [row_to_job(row) for row in self._run(statement, (*params, limit))]

    def stats(self, *, now: float) -> Stats:
        params = {"now": self._now(now)}
        with self._conn() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot
            moment = float(conn.execute(sql.CURRENT_TIME, params).fetchall()[0][0])
            per_queue = conn.execute(sql.STATS_QUEUES, {"now": moment}).fetchall()
            recent: dict[str, int] = dict(conn.execute(sql.STATS_RECENT, params).fetchall())
            paused = frozenset(r[0] for r in conn.execute("SELECT queue FROM jobq_paused_queues"))
        counts = [(row[0], status, row[n]) for row in per_queue
                  for n, status in _STATUS_COLUMNS if row[n]]  # fmt: skip
        due = [(row[0], row[7], row[8]) for row in per_queue]
        if sum(row[6] for row in per_queue) - len(per_queue) > sql.FOLD_AFTER_ROWS:
            self._fold_counts()
        return stats_from_rows(counts, due, recent, paused, moment)

    def _fold_counts(self) -> None:
        """Fold the rows of count changes into one per queue and status, unless another
        process is doing it; done by stats, rescue and purge so the sum stays short."""
        with self._conn() as conn, conn.transaction():
            if conn.execute(sql.FOLD_IF_FREE, (sql.COUNTS_LOCK,)).fetchall()[0][0]:
                conn.execute(sql.FOLD_COUNTS, {"extra": sql.FOLD_AFTER_ROWS})

    def oldest_runnable_age(self, *, now: float) -> float:
        oldest, moment = self._run(sql.OLDEST_DUE, {"now": self._now(now)})[0]
        return 0.0 if oldest is None or oldest > moment else float(moment - oldest)

    def purge(
        self,
        *,
        older_than: float,
        statuses: Collection[JobStatus] = (
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
        ),
        batch_size: int = 1000,
    ) -> int:
        chosen = check_purge(older_than, statuses, batch_size)
        total = 0
        for status in chosen:
            while True:
                deleted = self._rowcount(sql.PURGE, {
                    "status": status.value, "older_than": float(older_than), "limit": batch_size,
                })  # fmt: skip
                total += deleted
                if deleted < batch_size:
                    break
        self._fold_counts()
        return total

    def pause(self, queue: str, *, now: float) -> None:
        check_queues([queue])
        params = {"queue": queue, "now": self._now(now), "limit": MAX_PAUSED_QUEUES}
        with self._conn() as conn, conn.transaction():
            conn.execute(sql.PAUSE_LOCK, (sql.PAUSED_LOCK,))
            if conn.execute(sql.PAUSE, params).rowcount == 1:
                return
            known = "SELECT 1 FROM jobq_paused_queues WHERE queue = %s"
            if not conn.execute(known, (queue,)).fetchall():
                raise TooManyPausedQueues(queue, MAX_PAUSED_QUEUES)

    def resume(self, queue: str) -> None:
        check_queues([queue])
        self._run("DELETE FROM jobq_paused_queues WHERE queue = %s", (queue,))
        self._run(sql.NOTIFY, ([queue],))

    # -- schedules ----------------------------------------------------------------------

    def upsert_schedule(
        self, name: str, spec: str, next_fire_at: float, *, now: float
    ) -> ScheduleState:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a schedule name must be a non-empty str, got {name!r}")
        check_json("spec", spec)
        check_time("next_fire_at", next_fire_at)
        self._run(sql.UPSERT_SCHEDULE, {
            "name": name, "spec": spec, "next": float(next_fire_at), "now": self._now(now),
        })  # fmt: skip
        rows = self._run(f"SELECT {sql.SCHEDULE_COLS} FROM jobq_schedules WHERE name = %s",
                         (name,))  # fmt: skip
        return schedule_state(rows[0])

    def fire_schedule(
        self,
        name: str,
        fire_at: float,
        next_fire_at: float,
        jobs: Sequence[NewJob],
        *,
        now: float,
    ) -> list[int] | None:
        check_time("fire_at", fire_at)
        check_time("next_fire_at", next_fire_at)
        for index, job in enumerate(jobs):
            check_new(job, index)
        now_param = self._now(now)
        with self._conn() as conn, conn.transaction():
            fired = conn.execute(sql.FIRE, {
                "next": float(next_fire_at), "name": name, "fire_at": float(fire_at),
                "now": now_param,
            })  # fmt: skip
            if fired.rowcount != 1:
                return None
            ids = _insert_jobs(conn, jobs, now_param)
            if ids:
                conn.execute(sql.FIRED, {"fire_at": float(fire_at), "job": ids[-1], "name": name})
                conn.execute(sql.NOTIFY, (sorted({job.queue for job in jobs}),))
        return ids

    def list_schedules(self) -> list[ScheduleState]:
        rows = self._run(f"SELECT {sql.SCHEDULE_COLS} FROM jobq_schedules ORDER BY name", ())
        return [schedule_state(row) for row in rows]

    def set_schedule_paused(
        self, name: str, paused: bool, *, now: float, next_fire_at: float | None = None
    ) -> ScheduleState | None:
        if next_fire_at is not None:
            check_time("next_fire_at", next_fire_at)
        rows = self._run(sql.PAUSE_SCHEDULE, {
            "paused": bool(paused), "next": next_fire_at, "name": name, "now": self._now(now),
        })  # fmt: skip
        return schedule_state(rows[0]) if rows else None

    def paused_queues(self) -> frozenset[str]:
        return frozenset(row[0] for row in self._run("SELECT queue FROM jobq_paused_queues", ()))


def _insert_jobs(conn: psycopg.Connection[Any], jobs: Sequence[NewJob],
                 now: float | None) -> list[int]:  # fmt: skip
    """enqueue_many's inserts, in the caller's transaction."""
    ids: list[int] = []
    run: list[NewJob] = []  # consecutive jobs without a unique key
    for job in jobs:
        if job.unique_key is None:
            run.append(job)
            continue
        if run:
            ids.extend(_insert_run(conn, run, now))
            run = []
        found = conn.execute(sql.LIVE_BY_KEY, (job.name, job.unique_key)).fetchone()
        if found is None:
            found = conn.execute(sql.ENQUEUE, {
                "queue": job.queue, "name": job.name, "payload": job.payload,
                "priority": job.priority, "max_attempts": job.max_attempts,
                "run_at": job.run_at, "unique_key": job.unique_key, "now": now,
            }).fetchone()  # fmt: skip
        if found is None:  # another transaction took the key meanwhile
            found = conn.execute(sql.LIVE_BY_KEY, (job.name, job.unique_key)).fetchone()
        if found is None:
            raise StorageError(f"unique_key {job.unique_key!r} kept changing hands")
        ids.append(int(found[0]))
    if run:
        ids.extend(_insert_run(conn, run, now))
    return ids


def _insert_run(conn: psycopg.Connection[Any], jobs: list[NewJob], now: float | None) -> list[int]:
    row = conn.execute(sql.ENQUEUE_ARRAYS, {
        "queues": [j.queue for j in jobs], "names": [j.name for j in jobs],
        "payloads": [j.payload for j in jobs], "priorities": [j.priority for j in jobs],
        "max_attempts": [j.max_attempts for j in jobs], "run_ats": [j.run_at for j in jobs],
        "now": now,
    }).fetchone()  # fmt: skip
    assert row is not None
    return list(row[0])


def _redacted(url: str) -> str:
    """The URL without its password, for messages and reprs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "<invalid connection string>"
    if "password" in info:
        info["password"] = "***"
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


class _Listener:
    """One LISTEN connection per process, shared by the subscribed callbacks."""

    def __init__(self, storage: PostgresStorage) -> None:
        self._url = storage.url
        self._callbacks: list[Callable[[str | None], None]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, callback: Callable[[str | None], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(
                    target=self._listen, name="jobq-postgres-listener", daemon=True
                )
                self._thread.start()

    def remove(self, callback: Callable[[str | None], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)
            last = not self._callbacks
        if last:
            self.stop()

    def stop(self) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    def _listen(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {sql.CHANNEL}")
                    self._deliver(None)  # anything enqueued while not listening
                    failures = 0
                    while not self._stopping.is_set():
                        for notice in conn.notifies(timeout=0.2):
                            self._deliver(notice.payload)
            except psycopg.Error:
                failures += 1
                self._stopping.wait(min(5.0, 0.1 * 2**failures))  # the pools keep polling

    def _deliver(self, queue: str | None) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback(queue)
