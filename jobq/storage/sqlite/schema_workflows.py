"""The SQLite schema's workflow migrations: batches (:mod:`jobq.storage.batches`)
and dependencies (:mod:`jobq.storage.dependencies`), appended to
:data:`~jobq.storage.sqlite.schema.MIGRATIONS` in this order. Kept apart for size;
like every migration, never edited once released.
"""

BATCHES: tuple[str, ...] = (
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
)
"""Batches: jobs that are one unit, their counts kept by triggers, and the callback
jobs inserted by the transaction in which the last of them ends."""

DEPENDENCIES: tuple[str, ...] = (
    # Dependencies (jobq.storage.dependencies). A waiting job is pending with
    # run_at = 1e300 (WAITING_RUN_AT): every claim passes it over as not yet
    # due. waiting_for counts its dependencies not yet completed; waiting_run_at
    # is the run_at it asked for; a chain step gets the result of result_from.
    "ALTER TABLE jobs ADD COLUMN waiting_for INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE jobs ADD COLUMN waiting_run_at REAL",
    "ALTER TABLE jobs ADD COLUMN result_from INTEGER",
    "ALTER TABLE jobs ADD COLUMN parent_result TEXT",
    "ALTER TABLE jobs ADD COLUMN on_dependency_failure TEXT",
    """
        CREATE TABLE job_dependencies (
            depends_on_id INTEGER NOT NULL,
            job_id INTEGER NOT NULL,
            resolved INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (depends_on_id, job_id)
        ) WITHOUT ROWID
        """,
    "CREATE INDEX job_dependencies_job ON job_dependencies (job_id)",
    # What the triggers leave for the writer to finish before it commits
    # (jobq.storage.sqlite.dependencies): 'ended' rows are dependencies that
    # failed or were cancelled, whose dependents the writer ends or counts down
    # in a loop (SQLite triggers do not recurse); 'ready' rows are jobs made
    # runnable, whose queues other processes are told of after the commit.
    """
        CREATE TABLE job_dependency_events (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            job_id INTEGER NOT NULL,
            status TEXT,
            queue TEXT,
            at REAL NOT NULL
        )
        """,
    # A completed dependency counts each waiting dependent down in the same
    # transaction; the last one makes it runnable. An edge counts once
    # (resolved), even for a dependency retried after it failed. One seek for
    # a job that nothing depends on.
    """
        CREATE TRIGGER jobs_dependency_completed AFTER UPDATE OF status ON jobs
        WHEN NEW.status = 'completed' AND OLD.status IS NOT 'completed'
        AND EXISTS (SELECT 1 FROM job_dependencies WHERE depends_on_id = NEW.id
            AND NOT resolved) BEGIN
            INSERT INTO job_dependency_events (kind, job_id, queue, at)
            SELECT 'ready', id, queue, NEW.updated_at FROM jobs
            WHERE id IN (SELECT job_id FROM job_dependencies WHERE depends_on_id = NEW.id
                AND NOT resolved)
            AND status = 'pending' AND run_at = 1e300 AND waiting_for = 1;
            UPDATE jobs SET waiting_for = waiting_for - 1,
                run_at = CASE WHEN waiting_for = 1
                    THEN max(coalesce(waiting_run_at, NEW.updated_at), NEW.updated_at)
                    ELSE run_at END,
                parent_result = CASE WHEN result_from = NEW.id THEN NEW.result
                    ELSE parent_result END,
                updated_at = NEW.updated_at
            WHERE id IN (SELECT job_id FROM job_dependencies WHERE depends_on_id = NEW.id
                AND NOT resolved)
            AND status = 'pending' AND run_at = 1e300;
            UPDATE job_dependencies SET resolved = 1
            WHERE depends_on_id = NEW.id AND NOT resolved;
        END
        """,
    """
        CREATE TRIGGER jobs_dependency_ended AFTER UPDATE OF status ON jobs
        WHEN NEW.status IN ('failed', 'cancelled') AND OLD.status IN ('pending', 'processing')
        AND EXISTS (SELECT 1 FROM job_dependencies WHERE depends_on_id = NEW.id
            AND NOT resolved) BEGIN
            INSERT INTO job_dependency_events (kind, job_id, status, at)
            VALUES ('ended', NEW.id, NEW.status, NEW.updated_at);
        END
        """,
    # A dependency deleted before it ended (bulk delete of pending jobs) ends
    # its dependents as a cancelled one would; a deleted job's own edges go.
    """
        CREATE TRIGGER jobs_dependency_deleted AFTER DELETE ON jobs BEGIN
            INSERT INTO job_dependency_events (kind, job_id, status, at)
            SELECT 'ended', OLD.id, 'deleted', OLD.updated_at
            WHERE OLD.status IN ('pending', 'processing')
            AND EXISTS (SELECT 1 FROM job_dependencies WHERE depends_on_id = OLD.id
                AND NOT resolved);
            DELETE FROM job_dependencies WHERE job_id = OLD.id;
        END
        """,
)
"""Dependencies: jobs that wait for others to complete, and chains."""
