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
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from ..validate import check_seconds, check_time
from ._checks import (
    check_json,
    check_new,
    check_queues,
    new_tokens,
)
from ._limits import Allowance, check_limits, rate_windows
from ._rows import COLS, STATUS, row_to_job
from ._sqlite_db import DEFAULT_FILE_MODE, CheckpointMode, Database, Synchronous
from ._sqlite_driver import Connection, Row
from ._sqlite_manage import SQLiteBase
from ._sqlite_schema import affected_by_wal_reset_bug
from ._sqlite_sql import (
    BULK_SIZES,
    CANDIDATES,
    CANDIDATES_EXCEPT,
    CLAIM_ID,
    COMPLETE,
    COMPLETE_CHUNK,
    FAIL,
    FINISH_CANCELLED,
    FIRE,
    HAS_RUNNABLE,
    INSERT,
    INSERT_EACH,
    LIVE_BY_KEY,
    PROGRESS,
    RELEASE,
    RENEW,
    RESCUE,
    RUNNING_OF,
    bulk_insert,
    claimed_job,
    complete_from,
    insert_params,
    padded_size,
    take_in,
)
from .base import (
    Completion,
    Enqueued,
    Job,
    JobError,
    JobStatus,
    NewJob,
    RenewResult,
    RescueResult,
    StorageError,
    TaskLimit,
)

__all__ = ["SQLiteStorage"]

class SQLiteStorage(SQLiteBase):
    """Jobs in a SQLite database file, shared safely by threads and processes.

    :param path: the database file; created (with its schema) if missing.
        ``":memory:"`` is refused: each thread would see its own database.
    :param driver: ``"sqlite3"`` (default, the standard library) or ``"apsw"``
        (the ``jobq[apsw]`` extra, which bundles a recent SQLite: free of the
        WAL-reset bug, and faster for claims).
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
        driver: Literal["sqlite3", "apsw"] = "sqlite3",
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
        self._returning = self._db.returning
        try:
            self._db.conn()  # open now: a bad path or schema shows up here
        except BaseException:
            self._db.close()
            raise

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

    def __enter__(self) -> SQLiteStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r}, driver={self.driver!r})"

    # -- enqueue ----------------------------------------------------------------------

    def enqueue(self, job: NewJob, *, now: float) -> Enqueued:
        check_new(job, None)
        check_time("now", now)
        with self._db.write() as conn:
            if job.unique_key is not None:
                rows = conn.query(LIVE_BY_KEY, (job.name, job.unique_key))
                if rows:
                    return Enqueued(row_to_job(rows[0]), False)
            params = insert_params(job, now)
            if self._returning:
                rows = conn.query(f"{INSERT} RETURNING {COLS}", params)
            else:
                conn.run(INSERT, params)
                rows = conn.query(f"SELECT {COLS} FROM jobs WHERE id = last_insert_rowid()")
            return Enqueued(row_to_job(rows[0]), True)

    def enqueue_many(self, jobs: Sequence[NewJob], *, now: float) -> list[int]:
        check_time("now", now)
        for index, job in enumerate(jobs):
            check_new(job, index)
        if not jobs:
            return []
        with self._db.write() as conn:
            return self._insert_jobs(conn, jobs, now)

    def _insert_jobs(self, conn: Connection, jobs: Sequence[NewJob], now: float) -> list[int]:
        """enqueue_many's inserts, in the caller's write transaction."""
        ids: list[int] = []
        run: list[NewJob] = []  # consecutive jobs without a unique key
        for job in jobs:
            if job.unique_key is None:
                run.append(job)
                continue
            if run:
                ids.extend(self._insert_run(conn, run, now))
                run = []
            found = conn.query(LIVE_BY_KEY, (job.name, job.unique_key))
            if found:
                ids.append(found[0][0])
            else:
                conn.run(INSERT, insert_params(job, now))
                ids.append(conn.query("SELECT last_insert_rowid()")[0][0])
        if run:
            ids.extend(self._insert_run(conn, run, now))
        return ids

    def enqueue_payloads(
        self, template: NewJob, payloads: Sequence[str], *, now: float
    ) -> list[int]:
        check_time("now", now)
        check_new(template._replace(payload=""), None)
        if template.unique_key is not None or not payloads:
            return self.enqueue_many([template._replace(payload=p) for p in payloads], now=now)
        for index, payload in enumerate(payloads):
            if type(payload) is not str:
                check_new(template._replace(payload=payload), index)  # raises TypeError
        text = json.dumps(payloads, ensure_ascii=False)
        run_at = now if template.run_at is None else template.run_at
        with self._db.write() as conn:
            conn.run(INSERT_EACH, (template.queue, template.name, template.priority,
                                   template.max_attempts, run_at, now, text))
            last = int(conn.query("SELECT last_insert_rowid()")[0][0])
        return list(range(last - len(payloads) + 1, last + 1))

    def _insert_run(self, conn: Connection, jobs: list[NewJob], now: float) -> range:
        # Multi-row INSERTs: far fewer statement executions than executemany.
        # Chunk sizes come from a short fixed list so few statements are cached.
        position = 0
        while position < len(jobs):
            size = next(s for s in BULK_SIZES if s <= len(jobs) - position)
            chunk = jobs[position : position + size]
            position += size
            values: list[Any] = []
            for j in chunk:
                values += (j.queue, j.name, j.payload, j.priority, j.max_attempts,
                           now if j.run_at is None else j.run_at, now)  # fmt: skip
            conn.run(bulk_insert(size), values)
        # We hold the write lock and ids come from AUTOINCREMENT, so the rows
        # just inserted got consecutive ids ending at last_insert_rowid().
        last = int(conn.query("SELECT last_insert_rowid()")[0][0])
        return range(last - len(jobs) + 1, last + 1)

    # -- leases -----------------------------------------------------------------------

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
        check_time("now", now)
        if not isinstance(owner, str):
            raise TypeError(f"owner must be a str, got {owner!r}")
        check_seconds("lease_seconds", lease_seconds)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValueError(f"limit must be an integer from 1 to 1000, got {limit!r}")
        if limits:
            check_limits(limits, limited_at_most)
        if not names:
            return []
        expires = now + lease_seconds
        with self._db.write(durable=False) as conn:
            if limits:
                allowance = self._allowance(conn, limits, now, limited_at_most)
                blocked = json.dumps(allowance.blocked())
                rows = []
                for name in names:
                    rows += conn.query(CANDIDATES_EXCEPT, (None, None, now, name, limit, blocked))
                rows.sort(key=lambda r: (-r[4], r[8], r[0]))
                rows = allowance.take(rows, 2, limit)
                conn.run_many("INSERT INTO rate_starts (key, started_at) VALUES (?, ?)",
                              [(key, now) for key in allowance.rate_starts])  # fmt: skip
            else:
                rows = conn.query(CANDIDATES, (None, None, now, names[0], limit))
                if len(names) > 1:
                    # Each queue's best `limit`, read off its index in order; keep the best.
                    for name in names[1:]:
                        rows += conn.query(CANDIDATES, (None, None, now, name, limit))
                    rows.sort(key=lambda r: (-r[4], r[8], r[0]))
                    del rows[limit:]
            if not rows:
                return []
            if len(rows) > 1 and self._returning:
                tokens = self._take_many(conn, rows, owner, expires, now)
            else:
                tokens = new_tokens(len(rows))
                params = [(owner, expires, now, r[0], t) for r, t in zip(rows, tokens, strict=True)]
                if len(rows) == 1:
                    taken = conn.run(CLAIM_ID, params[0])
                else:
                    taken = conn.run_many(CLAIM_ID, params)
                if taken != len(rows):
                    raise StorageError(f"claimed {taken} of {len(rows)} candidates; rolled back")
        return [claimed_job(r, owner, t, expires, now) for r, t in zip(rows, tokens, strict=True)]

    def _allowance(
        self, conn: Connection, limits: Mapping[str, TaskLimit], now: float, at_most: int | None
    ) -> Allowance:
        """What the limited tasks may take now, read under the write lock."""
        counted = json.dumps(sorted(n for n, lim in limits.items() if lim.concurrency))
        running: dict[str, int] = dict(conn.query(RUNNING_OF, (counted,)))
        started: dict[str, int] = {}
        for key, (_, per) in rate_windows(limits).items():
            conn.run("DELETE FROM rate_starts WHERE key = ?1 AND started_at <= ?2",
                     (key, now - per))  # fmt: skip
            started[key] = conn.query("SELECT count(*) FROM rate_starts WHERE key = ?1",
                                      (key,))[0][0]  # fmt: skip
        return Allowance(limits, running, started, at_most)

    def _take_many(
        self, conn: Connection, rows: list[Row], owner: str, expires: float, now: float
    ) -> list[str]:
        """Mark candidate ``rows`` processing in one UPDATE; return their new tokens."""
        ids = [row[0] for row in rows]
        size = padded_size(len(ids))
        ids += [ids[-1]] * (size - len(ids))  # repeats change nothing
        found = conn.query(take_in(size), (owner, expires, now, *ids))
        tokens: dict[int, str] = {row[0]: row[1] for row in found}
        if len(tokens) != len(rows):
            raise StorageError(f"claimed {len(tokens)} of {len(rows)} candidates; rolled back")
        return [tokens[row[0]] for row in rows]

    def has_runnable(self, queues: Collection[str], *, now: float) -> bool:
        check_time("now", now)
        return any(self._query(HAS_RUNNABLE, (name, now))[0][0] for name in check_queues(queues))

    def renew(
        self,
        leases: Collection[tuple[int, str]],
        *,
        now: float,
        lease_seconds: float,
    ) -> RenewResult:
        check_time("now", now)
        check_seconds("lease_seconds", lease_seconds)
        renewed: set[int] = set()
        cancel: set[int] = set()
        lost: set[int] = set()
        expires = now + lease_seconds
        with self._db.write() as conn:
            for job_id, token in leases:
                rows = self._modify(
                    conn, RENEW, (expires, now, job_id, token), "cancel_requested", job_id
                )
                if rows:
                    renewed.add(job_id)
                    if rows[0][0]:
                        cancel.add(job_id)
                else:
                    lost.add(job_id)
        return RenewResult(frozenset(renewed), frozenset(lost - renewed), frozenset(cancel))

    def set_progress(self, job_id: int, lease_token: str, progress: str, *, now: float) -> bool:
        check_json("progress", progress)
        check_time("now", now)
        with self._db.write() as conn:
            return conn.run(PROGRESS, (progress, now, job_id, lease_token)) == 1

    def complete(
        self, job_id: int, lease_token: str, *, now: float, result: str | None = None
    ) -> bool:
        if result is not None:
            check_json("result", result)
        check_time("now", now)
        with self._db.write() as conn:
            return conn.run(COMPLETE, (result, now, job_id, lease_token)) == 1

    def complete_many(self, completions: Sequence[Completion], *, now: float) -> list[bool]:
        check_time("now", now)
        params = [(result, now, job_id, token) for job_id, token, result in completions]
        for result, *_ in params:
            if result is not None:
                check_json("result", result)
        if not params:
            return []
        with self._db.write() as conn:
            if self._returning:
                return self._complete_each(conn, completions, now)
            # Fast path: one executemany. If any lease was lost, undo it and go one
            # by one to learn which (executemany only reports a total).
            conn.run("SAVEPOINT complete_many")
            if conn.run_many(COMPLETE, params) == len(params):
                conn.run("RELEASE complete_many")
                return [True] * len(params)
            conn.run("ROLLBACK TO complete_many")
            conn.run("RELEASE complete_many")
            return [conn.run(COMPLETE, p) == 1 for p in params]

    def _complete_each(
        self, conn: Connection, completions: Sequence[Completion], now: float
    ) -> list[bool]:
        """complete_many as one UPDATE ... FROM (VALUES ...) RETURNING per chunk."""
        done: set[int] = set()
        for start in range(0, len(completions), COMPLETE_CHUNK):
            chunk = completions[start : start + COMPLETE_CHUNK]
            size = padded_size(len(chunk))
            values: list[Any] = [now]
            for job_id, token, result in chunk:
                values += (job_id, token, result)
            values += (0, "", None) * (size - len(chunk))  # id 0 never exists
            done.update(row[0] for row in conn.query(complete_from(size), values))
        outcome = []
        for job_id, _, _ in completions:
            outcome.append(job_id in done)
            done.discard(job_id)  # a repeated entry did not complete it again
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
        check_time("now", now)
        if retry_at is not None:
            check_time("retry_at", retry_at)
        params = (retry_at, now, error.type, error.message, error.traceback, job_id, lease_token)
        with self._db.write() as conn:
            rows = self._modify(conn, FAIL, params, "status", job_id)
        return STATUS[rows[0][0]] if rows else None

    def release(
        self, job_id: int, lease_token: str, *, now: float, run_at: float | None = None
    ) -> JobStatus | None:
        check_time("now", now)
        if run_at is not None:
            check_time("run_at", run_at)
        params = (now if run_at is None else run_at, now, job_id, lease_token)
        with self._db.write() as conn:
            rows = self._modify(conn, RELEASE, params, "status", job_id)
        return STATUS[rows[0][0]] if rows else None

    def finish_cancelled(self, job_id: int, lease_token: str, *, now: float) -> bool:
        check_time("now", now)
        with self._db.write() as conn:
            return conn.run(FINISH_CANCELLED, (now, job_id, lease_token)) == 1

    # -- schedules --------------------------------------------------------------------

    def fire_schedule(
        self,
        name: str,
        fire_at: float,
        next_fire_at: float,
        jobs: Sequence[NewJob],
        *,
        now: float,
    ) -> list[int] | None:
        for label, value in (("fire_at", fire_at), ("next_fire_at", next_fire_at), ("now", now)):
            check_time(label, value)
        for index, job in enumerate(jobs):
            check_new(job, index)
        with self._db.write() as conn:
            if conn.run(FIRE, (next_fire_at, fire_at, now, name)) != 1:
                return None
            ids = self._insert_jobs(conn, jobs, now)
            if ids:
                conn.run("UPDATE schedules SET last_fire_at = ?1, last_job_id = ?2 WHERE name = ?3",
                         (fire_at, ids[-1], name))  # fmt: skip
        return ids

    def rescue_expired(self, *, now: float, limit: int = 1000) -> RescueResult:
        check_time("now", now)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an integer of at least 1, got {limit!r}")
        outcome: dict[str, list[int]] = {"pending": [], "failed": [], "cancelled": []}
        with self._db.write() as conn:
            expired = conn.query(
                "SELECT id FROM jobs INDEXED BY jobs_lease WHERE status = 'processing' "
                "AND lease_expires_at <= ?1 ORDER BY lease_expires_at LIMIT ?2",
                (now, limit),
            )
            for (job_id,) in expired:
                for (status,) in self._modify(conn, RESCUE, (now, job_id), "status", job_id):
                    outcome[status].append(job_id)
        return RescueResult(
            tuple(outcome["pending"]), tuple(outcome["failed"]), tuple(outcome["cancelled"])
        )
