"""The SQLite schema, its migrations, and per-connection settings.

The schema version lives in ``PRAGMA user_version``. Migrations run inside
``BEGIN IMMEDIATE`` and re-read the version after taking the write lock, so
processes opening one fresh file at once take turns and exactly one applies
each step. Also here: whether the file may be opened at all (not on a network
filesystem, where WAL cannot work), and which SQLite versions have the
WAL-reset bug.

Rule: imports the driver adapter and the storage contract's errors only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

from ..base import SchemaVersionError, StorageError
from .driver import Connection, retry_busy

STATUSES = "'pending', 'processing', 'completed', 'failed', 'cancelled'"
# Spelled as ORs: SQLite evaluates `status IN (...)` in a CHECK through a
# temporary lookup per row, which made a bulk insert of 10,000 jobs 19 ms
# instead of 12 ms.
_STATUS_CHECK = " OR ".join(f"status = {status}" for status in STATUSES.split(", "))

# MIGRATIONS[v] takes a database from schema version v to v + 1. Append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        f"""
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            queue TEXT NOT NULL,
            name TEXT NOT NULL,
            payload TEXT NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL CHECK ({_STATUS_CHECK}),
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
            run_at REAL NOT NULL,
            lease_owner TEXT,
            lease_token TEXT,
            lease_expires_at REAL,
            error_type TEXT,
            error_message TEXT,
            error_traceback TEXT,
            result TEXT,
            progress TEXT,
            unique_key TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            updated_at REAL NOT NULL
        )
        """,
        # The claim walks this in order and stops after LIMIT rows: no sort.
        """
        CREATE INDEX jobs_claim ON jobs (queue, priority DESC, run_at, id)
        WHERE status = 'pending'
        """,
        # "Is anything due in this queue?" in O(log n), so an idle poll does not
        # walk every job scheduled for later; also serves stats.
        "CREATE INDEX jobs_due ON jobs (queue, run_at) WHERE status = 'pending'",
        "CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE status = 'processing'",
        """
        CREATE UNIQUE INDEX jobs_unique ON jobs (unique_key)
        WHERE unique_key IS NOT NULL AND status IN ('pending', 'processing')
        """,
        # Finished rows only, so claims never touch it: listing by status and id,
        # purge and recent counts read it without visiting the table.
        """
        CREATE INDEX jobs_finished ON jobs (status, id, finished_at)
        WHERE finished_at IS NOT NULL
        """,
        """
        CREATE TABLE paused_queues (
            queue TEXT PRIMARY KEY,
            paused_at REAL NOT NULL
        ) WITHOUT ROWID
        """,
    ),
    (
        # Recurring schedules: one row each; a fire is a compare-and-set of
        # next_fire_at, so one process alone enqueues the jobs of each fire time.
        """
        CREATE TABLE schedules (
            name TEXT PRIMARY KEY,
            spec TEXT NOT NULL,
            next_fire_at REAL NOT NULL,
            last_fire_at REAL,
            last_job_id INTEGER,
            paused INTEGER NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL
        ) WITHOUT ROWID
        """,
        # Counting a task's running jobs for its concurrency limit.
        "CREATE INDEX jobs_running ON jobs (name) WHERE status = 'processing'",
        # Starts of rate-limited tasks, for a sliding window shared by every process.
        "CREATE TABLE rate_starts (key TEXT NOT NULL, started_at REAL NOT NULL)",
        "CREATE INDEX rate_starts_window ON rate_starts (key, started_at)",
    ),
    (
        # A unique key is scoped to its task: task B with task A's key is a job of its own.
        "DROP INDEX jobs_unique",
        """
        CREATE UNIQUE INDEX jobs_unique ON jobs (name, unique_key)
        WHERE unique_key IS NOT NULL AND status IN ('pending', 'processing')
        """,
        # Jobs per queue and status, kept by the triggers below in the writer's own
        # transaction (writes are serialised anyway), so stats never count the table.
        # Rows at 0 stay until purge deletes them; readers skip them.
        """
        CREATE TABLE job_counts (
            queue TEXT NOT NULL,
            status TEXT NOT NULL,
            jobs INTEGER NOT NULL,
            PRIMARY KEY (queue, status)
        ) WITHOUT ROWID
        """,
        "INSERT INTO job_counts SELECT queue, status, count(*) FROM jobs GROUP BY queue, status",
        """
        CREATE TRIGGER jobs_counted_insert AFTER INSERT ON jobs BEGIN
            INSERT INTO job_counts (queue, status, jobs) VALUES (NEW.queue, NEW.status, 1)
            ON CONFLICT (queue, status) DO UPDATE SET jobs = jobs + 1;
        END
        """,
        # One statement for both rows: measured cheaper than an UPDATE and an upsert.
        """
        CREATE TRIGGER jobs_counted_update AFTER UPDATE OF queue, status ON jobs
        WHEN OLD.status IS NOT NEW.status OR OLD.queue IS NOT NEW.queue BEGIN
            INSERT INTO job_counts (queue, status, jobs)
            VALUES (OLD.queue, OLD.status, -1), (NEW.queue, NEW.status, 1)
            ON CONFLICT (queue, status) DO UPDATE SET jobs = jobs + excluded.jobs;
        END
        """,
        """
        CREATE TRIGGER jobs_counted_delete AFTER DELETE ON jobs BEGIN
            UPDATE job_counts SET jobs = jobs - 1 WHERE queue = OLD.queue AND status = OLD.status;
        END
        """,
        # Jobs finished in the last minute, read as two short ranges (the stats).
        """
        CREATE INDEX jobs_finished_at ON jobs (status, finished_at)
        WHERE finished_at IS NOT NULL
        """,
    ),
    (
        # The live worker pools: one row each, kept by the pool (jobq.storage.workers).
        """
        CREATE TABLE workers (
            owner TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            name TEXT NOT NULL,
            queues TEXT NOT NULL,
            concurrency INTEGER NOT NULL,
            lease_seconds REAL NOT NULL,
            started_at REAL NOT NULL,
            last_seen_at REAL NOT NULL,
            stopping INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID
        """,
    ),
    (
        # Lines a task keeps with its job (jobq.current_job().log), numbered per job.
        """
        CREATE TABLE job_logs (
            job_id INTEGER NOT NULL,
            number INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            logged_at REAL NOT NULL,
            message TEXT NOT NULL,
            PRIMARY KEY (job_id, number)
        ) WITHOUT ROWID
        """,
        # A trigger, not a foreign key: SQLite enforces those only on connections
        # that turned them on, and every deletion of a job must take its lines along.
        """
        CREATE TRIGGER jobs_logs_deleted AFTER DELETE ON jobs BEGIN
            DELETE FROM job_logs WHERE job_id = OLD.id;
        END
        """,
    ),
    (
        # Attempts that ended without completing (jobq.storage.history), written in
        # the transaction that ended them; several per job, read by job.
        """
        CREATE TABLE job_attempts (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            lease_owner TEXT,
            started_at REAL,
            ended_at REAL NOT NULL,
            outcome TEXT NOT NULL,
            error_type TEXT,
            error_message TEXT,
            error_traceback TEXT
        )
        """,
        "CREATE INDEX job_attempts_job ON job_attempts (job_id, id)",
        """
        CREATE TRIGGER jobs_attempts_deleted AFTER DELETE ON jobs BEGIN
            DELETE FROM job_attempts WHERE job_id = OLD.id;
        END
        """,
        # Jobs that ended completed or failed per minute (its start, epoch seconds)
        # and queue, kept by the statements that end them (writes are serialised).
        """
        CREATE TABLE job_throughput (
            minute INTEGER NOT NULL,
            queue TEXT NOT NULL,
            completed INTEGER NOT NULL,
            failed INTEGER NOT NULL,
            PRIMARY KEY (minute, queue)
        ) WITHOUT ROWID
        """,
        # A new minute's first row (not the updates of an upsert) drops the rows
        # older than two days before it: a range at the start of the key.
        """
        CREATE TRIGGER job_throughput_trimmed AFTER INSERT ON job_throughput BEGIN
            DELETE FROM job_throughput WHERE minute < NEW.minute - 172800;
        END
        """,
    ),
    (
        # The worker registry grows: the process identity for the same-host check
        # of dead pools, and what each busy thread runs (jobq.storage.workers).
        "ALTER TABLE workers ADD COLUMN boot_id TEXT",
        "ALTER TABLE workers ADD COLUMN pid_namespace INTEGER",
        "ALTER TABLE workers ADD COLUMN process_start INTEGER",
        "ALTER TABLE workers ADD COLUMN threads TEXT NOT NULL DEFAULT '[]'",
    ),
    (
        # Job expiry (jobq.storage.expiry): no attempt starts after expires_at.
        "ALTER TABLE jobs ADD COLUMN expires_at REAL",
        # The expiry sweep's "pending jobs whose expires_at has passed", and the
        # claim's "has any pending job expired?", each a seek. Only jobs given an
        # expiry, and only while pending, have an entry: a job without one costs
        # the insert nothing but the test of the WHERE clause.
        """
        CREATE INDEX jobs_expiring ON jobs (expires_at)
        WHERE expires_at IS NOT NULL AND status = 'pending'
        """,
        # Per-key limits: the group a job counts in (computed at enqueue from its
        # arguments), and the limit key each start of a per-key rate window was for.
        # No index: claims read the keys of processing jobs off jobs_running and of
        # recent starts off rate_starts_window, rows a claim reads already.
        "ALTER TABLE jobs ADD COLUMN limit_key TEXT",
        "ALTER TABLE rate_starts ADD COLUMN limit_key TEXT",
        # A throttled enqueue (NewJob.throttle) looks for the newest job of its task
        # and key created since a moment, ended ones too (jobq.storage.sqlite.duplicates).
        "CREATE INDEX jobs_key_created ON jobs (name, unique_key, created_at) "
        "WHERE unique_key IS NOT NULL",
    ),
    (
        # Batches (jobq.storage.batches): jobs that are one unit, with callback jobs
        # inserted by the transaction in which the last of them ends.
        "ALTER TABLE jobs ADD COLUMN batch_id INTEGER",
        # The callback jobs of a finished batch point back at it.
        "ALTER TABLE jobs ADD COLUMN callback_of INTEGER",
        # A batch's jobs: cancelling them. Not by status, so claims and ends leave it
        # alone (processing jobs are counted off the small jobs_lease index instead).
        "CREATE INDEX jobs_batch ON jobs (batch_id) WHERE batch_id IS NOT NULL",
        "CREATE INDEX jobs_callback_of ON jobs (callback_of) WHERE callback_of IS NOT NULL",
        """
        CREATE TABLE batches (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            total INTEGER NOT NULL DEFAULT 0,
            completed INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            cancelled INTEGER NOT NULL DEFAULT 0,
            sealed INTEGER NOT NULL DEFAULT 0,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            finished_at REAL,
            on_complete TEXT,
            on_success TEXT,
            on_failure TEXT,
            queue TEXT NOT NULL,
            priority INTEGER NOT NULL,
            max_attempts INTEGER NOT NULL,
            meta TEXT NOT NULL
        )
        """,
        # Wake-ups read the newest finish off this (one seek).
        "CREATE INDEX batches_finished ON batches (finished_at) WHERE finished_at IS NOT NULL",
        # Every status change of a batch's job into or out of an ended status, by any
        # statement, counts in the batch, in that statement's transaction.
        """
        CREATE TRIGGER jobs_batch_counted AFTER UPDATE OF status ON jobs
        WHEN NEW.batch_id IS NOT NULL AND OLD.status IS NOT NEW.status
            AND (OLD.status IN ('completed', 'failed', 'cancelled')
                OR NEW.status IN ('completed', 'failed', 'cancelled'))
        BEGIN
            UPDATE batches SET
                completed = completed + (NEW.status = 'completed') - (OLD.status = 'completed'),
                failed = failed + (NEW.status = 'failed') - (OLD.status = 'failed'),
                cancelled = cancelled + (NEW.status = 'cancelled') - (OLD.status = 'cancelled'),
                updated_at = NEW.updated_at
            WHERE id = NEW.batch_id;
        END
        """,
        # A batch's job deleted before it ended (a bulk delete of pending jobs) will
        # never run: it counts as cancelled, so the batch can still finish.
        """
        CREATE TRIGGER jobs_batch_deleted AFTER DELETE ON jobs
        WHEN OLD.batch_id IS NOT NULL AND OLD.status IN ('pending', 'processing')
        BEGIN
            UPDATE batches SET cancelled = cancelled + 1 WHERE id = OLD.batch_id;
        END
        """,
        # The last end (or the seal) of a batch inserts its callback jobs, once:
        # finished_at is set in the same transaction, and writes are serialised.
        # Each gets the batch's counts as its one argument (a BatchSummary).
        """
        CREATE TRIGGER batches_finished AFTER UPDATE OF completed, failed, cancelled, sealed
        ON batches
        WHEN NEW.sealed = 1 AND NEW.finished_at IS NULL
            AND NEW.completed + NEW.failed + NEW.cancelled >= NEW.total
        BEGIN
            INSERT INTO jobs (queue, name, payload, priority, status, max_attempts, run_at,
                created_at, updated_at, callback_of)
            SELECT NEW.queue, c.name, json_object('args', json_array(json_object(
                    'id', NEW.id, 'event', c.event, 'total', NEW.total,
                    'completed', NEW.completed, 'failed', NEW.failed,
                    'cancelled', NEW.cancelled, 'meta', json(NEW.meta))),
                    'kwargs', json_object()),
                NEW.priority, 'pending', NEW.max_attempts, NEW.updated_at, NEW.updated_at,
                NEW.updated_at, NEW.id
            FROM (
                SELECT 1 AS k, 'complete' AS event, NEW.on_complete AS name
                UNION ALL SELECT 2, 'success',
                    CASE WHEN NEW.completed = NEW.total THEN NEW.on_success END
                UNION ALL SELECT 3, 'failure', CASE WHEN NEW.failed > 0 THEN NEW.on_failure END
            ) AS c
            WHERE c.name IS NOT NULL ORDER BY c.k;
            UPDATE batches SET finished_at = NEW.updated_at WHERE id = NEW.id;
        END
        """,
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this jobq writes."""


def migrate(conn: Connection, migrations: Sequence[Sequence[str]] = MIGRATIONS) -> int:
    """Bring the database to ``len(migrations)``; return the version found before.

    Safe when several processes open a fresh file at once: the version is
    re-read under the write lock, so exactly one applies each migration.
    Raises :class:`SchemaVersionError` if the database is newer than this code.
    """
    target = len(migrations)
    found = int(retry_busy(conn.driver, lambda: conn.query("PRAGMA user_version"))[0][0])
    if found == target:
        return found
    if found > target:
        raise SchemaVersionError(found, target)
    conn.begin_immediate()
    try:
        found = int(conn.query("PRAGMA user_version")[0][0])
        if found > target:
            raise SchemaVersionError(found, target)
        for version in range(found, target):
            for statement in migrations[version]:
                conn.run(statement)
        conn.run(f"PRAGMA user_version = {target:d}")
        conn.run("COMMIT")
    except BaseException:
        conn.rollback_quietly()
        raise
    return found


def configure(
    conn: Connection, *, synchronous: Literal["NORMAL", "FULL"], journal_size_limit: int
) -> None:
    """Per-connection settings, and WAL mode (persistent in the file) if not yet on."""
    mode = retry_busy(conn.driver, lambda: conn.query("PRAGMA journal_mode"))[0][0]
    if str(mode).lower() != "wal":
        mode = retry_busy(conn.driver, lambda: conn.query("PRAGMA journal_mode = WAL"))[0][0]
        if str(mode).lower() != "wal":
            raise StorageError(
                f"could not switch the database to WAL mode (got {mode!r}); "
                "is it on a network file system?"
            )
    conn.run(f"PRAGMA synchronous = {synchronous}")
    conn.run(f"PRAGMA journal_size_limit = {journal_size_limit:d}")


def affected_by_wal_reset_bug(version: tuple[int, int, int]) -> bool:
    """True for SQLite 3.7.0 to 3.51.2, whose WAL-reset bug can corrupt a database
    written by several processes at once (fixed in 3.51.3)."""
    return (3, 7, 0) <= version < (3, 51, 3)


NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "afs",
        "9p",
        "ceph",
        "glusterfs",
        "fuse.sshfs",
        "fuse.glusterfs",
        "fuse.s3fs",
        "fuse.rclone",
        "fuse.gcsfuse",
        "lustre",
        "gpfs",
        "beegfs",
        "davfs",
        "fuse.davfs2",
    }
)
"""Filesystem types where SQLite's WAL mode cannot work: its shared memory and
locks are per machine, so several hosts would corrupt the database."""


def filesystem_type(path: str, mountinfo: str | None = None) -> str | None:
    """The type of the filesystem holding ``path`` (Linux: from
    ``/proc/self/mountinfo``), or None when it cannot be told."""
    if mountinfo is None:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as file:
                mountinfo = file.read()
        except OSError:
            return None
    target = os.path.realpath(path)
    best, kind = "", None
    for line in mountinfo.splitlines():
        fields = line.split(" - ", 1)
        parts = fields[0].split()
        if len(fields) != 2 or len(parts) < 5:
            continue
        mount_point = parts[4].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, fields[1].split()[0]
    return kind


def check_local_filesystem(path: str) -> None:
    """Refuse a database file on a network filesystem, where WAL cannot work."""
    kind = filesystem_type(os.path.dirname(os.path.abspath(path)) or ".")
    if kind in NETWORK_FILESYSTEMS:
        raise StorageError(
            f"{path!r} is on a network filesystem ({kind}); SQLite's WAL mode needs "
            "shared memory and locks that only work on a local disk, so processes on "
            "several hosts would corrupt it. Keep the file on a local disk, or use "
            "PostgreSQL (DurableQueue('postgresql://...')) for workers on several hosts"
        )
