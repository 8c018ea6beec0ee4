"""The PostgreSQL schema and its migrations.

The schema version lives in the one row of ``jobq_schema``. :func:`migrate`
runs under an advisory lock, so hosts starting together take turns and each
step is applied once.

Rule: imports psycopg and the storage contract's errors only.
"""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg.errors

from ..base import SchemaVersionError
from . import schema_workflows

MIGRATION_LOCK = 0x6A6F6271  # "jobq": the advisory lock held while migrating

STATUSES = "'pending', 'processing', 'completed', 'failed', 'cancelled'"

COUNTED = ("pending", "processing", "completed", "failed", "cancelled")
"""The columns of jobq_job_counts after the queue, one per status."""
ANY_CHANGE = " OR ".join(f"{status} <> 0" for status in COUNTED)


def _counted(change: str) -> str:
    """One sum per status column of ``change`` over the rows of that status."""
    return ", ".join(
        f"coalesce(sum({change}) FILTER (WHERE status = '{status}'), 0)::bigint AS {status}"
        for status in COUNTED
    )


_VACUUM_OFTEN = (
    "autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000, "
    "autovacuum_vacuum_cost_limit = 1000"
)
"""Vacuum once 1,000 rows and 1% of the table are dead, five times the default pace."""

# MIGRATIONS[v] takes a database from schema version v to v + 1. Append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        f"""
        CREATE TABLE jobq_jobs (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            queue text NOT NULL,
            name text NOT NULL,
            payload text NOT NULL,
            priority integer NOT NULL DEFAULT 0,
            status text NOT NULL CHECK (status IN ({STATUSES})),
            attempts integer NOT NULL DEFAULT 0,
            max_attempts integer NOT NULL CHECK (max_attempts >= 1),
            run_at double precision NOT NULL,
            lease_owner text,
            lease_token text,
            lease_expires_at double precision,
            error_type text,
            error_message text,
            error_traceback text,
            result text,
            progress text,
            unique_key text,
            cancel_requested boolean NOT NULL DEFAULT false,
            created_at double precision NOT NULL,
            started_at double precision,
            finished_at double precision,
            updated_at double precision NOT NULL
        )
        """,
        # Runnable jobs only, in claim order: claims read it and stop after LIMIT rows.
        """
        CREATE INDEX jobq_jobs_claim ON jobq_jobs (queue, priority DESC, run_at, id)
        WHERE status = 'pending'
        """,
        """
        CREATE INDEX jobq_jobs_lease ON jobq_jobs (lease_expires_at)
        WHERE status = 'processing'
        """,
        """
        CREATE UNIQUE INDEX jobq_jobs_unique ON jobq_jobs (unique_key)
        WHERE unique_key IS NOT NULL AND status IN ('pending', 'processing')
        """,
        """
        CREATE INDEX jobq_jobs_finished ON jobq_jobs (status, finished_at)
        WHERE finished_at IS NOT NULL
        """,
        """
        CREATE TABLE jobq_paused_queues (
            queue text PRIMARY KEY,
            paused_at double precision NOT NULL
        )
        """,
    ),
    (
        """
        CREATE TABLE jobq_schedules (
            name text PRIMARY KEY,
            spec text NOT NULL,
            next_fire_at double precision NOT NULL,
            last_fire_at double precision,
            last_job_id bigint,
            paused boolean NOT NULL DEFAULT false,
            updated_at double precision NOT NULL
        )
        """,
        "CREATE INDEX jobq_jobs_running ON jobq_jobs (name) WHERE status = 'processing'",
        """
        CREATE TABLE jobq_rate_starts (
            key text NOT NULL,
            started_at double precision NOT NULL
        )
        """,
        "CREATE INDEX jobq_rate_starts_window ON jobq_rate_starts (key, started_at)",
    ),
    (
        # A unique key is scoped to its task: task B with task A's key is a job of its own.
        "DROP INDEX jobq_jobs_unique",
        """
        CREATE UNIQUE INDEX jobq_jobs_unique ON jobq_jobs (name, unique_key)
        WHERE unique_key IS NOT NULL AND status IN ('pending', 'processing')
        """,
        # Per queue: the oldest due run_at in one seek, scheduled jobs as one range.
        "CREATE INDEX jobq_jobs_due ON jobq_jobs (queue, run_at) WHERE status = 'pending'",
        # Jobs per queue and status, as changes appended by each writing statement
        # (one row per queue it touched): no row that every writer updates, whose
        # lock would be held through each commit and serialise the writers. Stats
        # sum it; folding (stats, rescue, purge) compacts it.
        """
        CREATE TABLE jobq_job_counts (
            queue text NOT NULL,
            pending bigint NOT NULL,
            processing bigint NOT NULL,
            completed bigint NOT NULL,
            failed bigint NOT NULL,
            cancelled bigint NOT NULL
        )
        """,
        f"""
        INSERT INTO jobq_job_counts SELECT queue, {_counted("1")}
        FROM jobq_jobs GROUP BY queue
        """,
        f"""
        CREATE FUNCTION jobq_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO jobq_job_counts SELECT queue, {_counted("1")}
            FROM jobq_inserted GROUP BY queue;
            RETURN NULL;
        END $$
        """,
        f"""
        CREATE FUNCTION jobq_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO jobq_job_counts SELECT * FROM (
                SELECT queue, {_counted("change")} FROM (
                    SELECT queue, status, -1 AS change FROM jobq_before
                    UNION ALL SELECT queue, status, 1 FROM jobq_after
                ) AS changes GROUP BY queue
            ) AS net WHERE {ANY_CHANGE};
            RETURN NULL;
        END $$
        """,
        f"""
        CREATE FUNCTION jobq_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO jobq_job_counts SELECT queue, {_counted("-1")}
            FROM jobq_deleted GROUP BY queue;
            RETURN NULL;
        END $$
        """,
        """
        CREATE TRIGGER jobq_jobs_counted_insert AFTER INSERT ON jobq_jobs
        REFERENCING NEW TABLE AS jobq_inserted
        FOR EACH STATEMENT EXECUTE FUNCTION jobq_count_inserted()
        """,
        """
        CREATE TRIGGER jobq_jobs_counted_update AFTER UPDATE ON jobq_jobs
        REFERENCING OLD TABLE AS jobq_before NEW TABLE AS jobq_after
        FOR EACH STATEMENT EXECUTE FUNCTION jobq_count_updated()
        """,
        """
        CREATE TRIGGER jobq_jobs_counted_delete AFTER DELETE ON jobq_jobs
        REFERENCING OLD TABLE AS jobq_deleted
        FOR EACH STATEMENT EXECUTE FUNCTION jobq_count_deleted()
        """,
    ),
    (
        # The live worker pools: one row each, kept by the pool (jobq.storage.workers).
        """
        CREATE TABLE jobq_workers (
            owner text PRIMARY KEY,
            host text NOT NULL,
            pid integer NOT NULL,
            name text NOT NULL,
            queues text NOT NULL,
            concurrency integer NOT NULL,
            lease_seconds double precision NOT NULL,
            started_at double precision NOT NULL,
            last_seen_at double precision NOT NULL,
            stopping boolean NOT NULL DEFAULT false
        )
        """,
    ),
    (
        # Lines a task keeps with its job (jobq.current_job().log), numbered per job;
        # deleting a job deletes its lines.
        """
        CREATE TABLE jobq_job_logs (
            job_id bigint NOT NULL REFERENCES jobq_jobs (id) ON DELETE CASCADE,
            number bigint NOT NULL,
            attempt integer NOT NULL,
            logged_at double precision NOT NULL,
            message text NOT NULL,
            PRIMARY KEY (job_id, number)
        )
        """,
    ),
    (
        # Attempts that ended without completing (jobq.storage.history), written by
        # the statement that ended them; deleting a job deletes its attempts.
        """
        CREATE TABLE jobq_job_attempts (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            job_id bigint NOT NULL REFERENCES jobq_jobs (id) ON DELETE CASCADE,
            attempt integer NOT NULL,
            lease_owner text,
            started_at double precision,
            ended_at double precision NOT NULL,
            outcome text NOT NULL,
            error_type text,
            error_message text,
            error_traceback text
        )
        """,
        "CREATE INDEX jobq_job_attempts_job ON jobq_job_attempts (job_id, id)",
        # Jobs that ended completed or failed per minute and queue, as rows appended
        # by each ending statement (no row that every writer updates and locks until
        # its commit); folding (with the job counts) sums each minute into one row.
        """
        CREATE TABLE jobq_throughput (
            minute bigint NOT NULL,
            queue text NOT NULL,
            completed bigint NOT NULL,
            failed bigint NOT NULL
        )
        """,
        "CREATE INDEX jobq_throughput_minute ON jobq_throughput (minute, queue)",
    ),
    (
        # The worker registry grows: the process identity for the same-host check
        # of dead pools, and what each busy thread runs (jobq.storage.workers).
        """
        ALTER TABLE jobq_workers ADD COLUMN boot_id text,
            ADD COLUMN pid_namespace bigint,
            ADD COLUMN process_start bigint,
            ADD COLUMN threads text NOT NULL DEFAULT '[]'
        """,
    ),
    (
        # Vacuum the queue's tables as they churn, not once a fifth of them is dead
        # (PostgreSQL's default): each job leaves two dead row versions (claimed,
        # then ended), and claims walk past the index entries of dead ones until
        # vacuum removes them. Same for the rows of changes that folding deletes.
        # No fillfactor: claims and ends change status, which the partial indexes
        # read, so those updates cannot be HOT whatever the free space.
        f"ALTER TABLE jobq_jobs SET ({_VACUUM_OFTEN}, "
        "autovacuum_vacuum_insert_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02)",
        f"ALTER TABLE jobq_job_counts SET ({_VACUUM_OFTEN})",
        f"ALTER TABLE jobq_throughput SET ({_VACUUM_OFTEN})",
    ),
    (
        # Job expiry (jobq.storage.expiry): no attempt starts after expires_at.
        "ALTER TABLE jobq_jobs ADD COLUMN expires_at double precision",
        # The expiry sweep's "pending jobs whose expires_at has passed", a seek;
        # only jobs given an expiry, and only while pending, have an entry.
        """
        CREATE INDEX jobq_jobs_expiring ON jobq_jobs (expires_at)
        WHERE expires_at IS NOT NULL AND status = 'pending'
        """,
        # Per-key limits: the group a job counts in (computed at enqueue from its
        # arguments), and the limit key each start of a per-key rate window was for.
        # No index: claims read the keys of processing jobs off jobq_jobs_running
        # and of recent starts off jobq_rate_starts_window, rows a claim reads already.
        "ALTER TABLE jobq_jobs ADD COLUMN limit_key text",
        "ALTER TABLE jobq_rate_starts ADD COLUMN limit_key text",
        # A throttled enqueue (NewJob.throttle) looks for the newest job of its task
        # and key created since a moment, ended ones too (jobq.storage.postgres.duplicates).
        "CREATE INDEX jobq_jobs_key_created ON jobq_jobs (name, unique_key, created_at) "
        "WHERE unique_key IS NOT NULL",
    ),
    schema_workflows.BATCHES,
    schema_workflows.DEPENDENCIES,
)

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this jobq writes."""


def migrate(conn: psycopg.Connection[Any]) -> None:
    """Bring the schema of ``conn`` (in autocommit mode) to :data:`SCHEMA_VERSION`.

    Raises :class:`~jobq.storage.base.SchemaVersionError` if a newer jobq wrote it.
    """
    try:
        found = conn.execute("SELECT version FROM jobq_schema").fetchone()
    except psycopg.errors.UndefinedTable:
        found = None
    if found is not None and found[0] == SCHEMA_VERSION:
        return
    if found is not None and found[0] > SCHEMA_VERSION:
        raise SchemaVersionError(found[0], SCHEMA_VERSION)
    with conn.transaction():
        # Hosts starting at once queue up here; each re-reads the version.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS jobq_schema (version integer NOT NULL)")
        row = conn.execute("SELECT version FROM jobq_schema").fetchone()
        version = 0 if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(version, SCHEMA_VERSION)
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
        if row is None:
            conn.execute("INSERT INTO jobq_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
        else:
            conn.execute("UPDATE jobq_schema SET version = %s", (SCHEMA_VERSION,))
