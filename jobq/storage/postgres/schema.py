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
    (
        # Batches (jobq.storage.batches): jobs that are one unit, with callback jobs
        # inserted by the transaction in which the last of them ends.
        "ALTER TABLE jobq_jobs ADD COLUMN batch_id bigint, ADD COLUMN callback_of bigint",
        # A batch's jobs by status: its live counts, and cancelling its pending jobs.
        "CREATE INDEX jobq_jobs_batch ON jobq_jobs (batch_id, status) WHERE batch_id IS NOT NULL",
        "CREATE INDEX jobq_jobs_callback_of ON jobq_jobs (callback_of) "
        "WHERE callback_of IS NOT NULL",
        """
        CREATE TABLE jobq_batches (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            total bigint NOT NULL DEFAULT 0,
            completed bigint NOT NULL DEFAULT 0,
            failed bigint NOT NULL DEFAULT 0,
            cancelled bigint NOT NULL DEFAULT 0,
            sealed boolean NOT NULL DEFAULT false,
            cancel_requested boolean NOT NULL DEFAULT false,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            finished_at double precision,
            on_complete text,
            on_success text,
            on_failure text,
            queue text NOT NULL,
            priority integer NOT NULL,
            max_attempts integer NOT NULL,
            meta text NOT NULL
        )
        """,
        # The sealed batches of `ids` whose jobs have all ended get their finish
        # stamped and their callback jobs inserted (each with the batch's counts as
        # its one argument, a BatchSummary), and workers are told. The caller holds
        # the rows' locks, so one transaction alone sees finished_at still null.
        """
        CREATE FUNCTION jobq_batches_finish(ids bigint[]) RETURNS void
        LANGUAGE plpgsql AS $$
        DECLARE queues text[];
        BEGIN
            WITH done AS (
                UPDATE jobq_batches SET finished_at = updated_at
                WHERE id = ANY(ids) AND sealed AND finished_at IS NULL
                    AND completed + failed + cancelled >= total
                RETURNING *
            ), ins AS (
                INSERT INTO jobq_jobs (queue, name, payload, priority, status, max_attempts,
                    run_at, created_at, updated_at, callback_of)
                SELECT d.queue, c.name, json_build_object('args', json_build_array(
                        json_build_object('id', d.id, 'event', c.event, 'total', d.total,
                            'completed', d.completed, 'failed', d.failed,
                            'cancelled', d.cancelled, 'meta', d.meta::json)),
                        'kwargs', json_build_object())::text,
                    d.priority, 'pending', d.max_attempts, d.updated_at, d.updated_at,
                    d.updated_at, d.id
                FROM done AS d CROSS JOIN LATERAL (VALUES
                    (1, 'complete', d.on_complete),
                    (2, 'success', CASE WHEN d.completed = d.total THEN d.on_success END),
                    (3, 'failure', CASE WHEN d.failed > 0 THEN d.on_failure END)
                ) AS c(k, event, name)
                WHERE c.name IS NOT NULL ORDER BY d.id, c.k
                RETURNING queue
            )
            SELECT array_agg(DISTINCT queue) INTO queues FROM ins;
            IF queues IS NOT NULL THEN
                PERFORM pg_notify('jobq_jobs', q) FROM unnest(queues) AS q;
            END IF;
        END $$
        """,
        # Every statement that changes jobs counts the changes into or out of an
        # ended status of batches' jobs (a statement without batch jobs returns at
        # the first test), locking the batches in id order (two
        # transactions ending jobs of the same two batches cannot deadlock), then
        # finishes those whose jobs have all ended.
        """
        CREATE FUNCTION jobq_batches_counted() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            touched bigint[];
            completed_changes bigint[];
            failed_changes bigint[];
            cancelled_changes bigint[];
            ats double precision[];
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM jobq_after WHERE batch_id IS NOT NULL) THEN
                RETURN NULL;
            END IF;
            SELECT array_agg(batch_id ORDER BY batch_id), array_agg(dc ORDER BY batch_id),
                array_agg(df ORDER BY batch_id), array_agg(dx ORDER BY batch_id),
                array_agg(at ORDER BY batch_id)
            INTO touched, completed_changes, failed_changes, cancelled_changes, ats
            FROM (
                SELECT a.batch_id,
                    sum((a.status = 'completed')::int - (b.status = 'completed')::int) AS dc,
                    sum((a.status = 'failed')::int - (b.status = 'failed')::int) AS df,
                    sum((a.status = 'cancelled')::int - (b.status = 'cancelled')::int) AS dx,
                    max(a.updated_at) AS at
                FROM jobq_after AS a JOIN jobq_before AS b ON a.id = b.id
                WHERE a.batch_id IS NOT NULL AND a.status <> b.status
                    AND (a.status IN ('completed', 'failed', 'cancelled')
                        OR b.status IN ('completed', 'failed', 'cancelled'))
                GROUP BY a.batch_id
            ) AS changes;
            IF touched IS NULL THEN
                RETURN NULL;
            END IF;
            PERFORM 1 FROM jobq_batches WHERE id = ANY(touched) ORDER BY id FOR UPDATE;
            UPDATE jobq_batches AS t SET completed = t.completed + c.dc,
                failed = t.failed + c.df, cancelled = t.cancelled + c.dx, updated_at = c.at
            FROM unnest(touched, completed_changes, failed_changes, cancelled_changes, ats)
                AS c(batch_id, dc, df, dx, at)
            WHERE t.id = c.batch_id;
            PERFORM jobq_batches_finish(touched);
            RETURN NULL;
        END $$
        """,
        """
        CREATE TRIGGER jobq_jobs_batches_counted AFTER UPDATE ON jobq_jobs
        REFERENCING OLD TABLE AS jobq_before NEW TABLE AS jobq_after
        FOR EACH STATEMENT EXECUTE FUNCTION jobq_batches_counted()
        """,
        # A batch's job deleted before it ended (a bulk delete of pending jobs) will
        # never run: it counts as cancelled, so the batch can still finish.
        """
        CREATE FUNCTION jobq_batches_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            touched bigint[];
            counts bigint[];
        BEGIN
            SELECT array_agg(batch_id ORDER BY batch_id), array_agg(n ORDER BY batch_id)
            INTO touched, counts
            FROM (
                SELECT batch_id, count(*) AS n FROM jobq_deleted_rows
                WHERE batch_id IS NOT NULL AND status IN ('pending', 'processing')
                GROUP BY batch_id
            ) AS gone;
            IF touched IS NULL THEN
                RETURN NULL;
            END IF;
            PERFORM 1 FROM jobq_batches WHERE id = ANY(touched) ORDER BY id FOR UPDATE;
            UPDATE jobq_batches AS t SET cancelled = t.cancelled + c.n
            FROM unnest(touched, counts) AS c(batch_id, n) WHERE t.id = c.batch_id;
            PERFORM jobq_batches_finish(touched);
            RETURN NULL;
        END $$
        """,
        """
        CREATE TRIGGER jobq_jobs_batches_deleted AFTER DELETE ON jobq_jobs
        REFERENCING OLD TABLE AS jobq_deleted_rows
        FOR EACH STATEMENT EXECUTE FUNCTION jobq_batches_deleted()
        """,
    ),
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
