"""The PostgreSQL schema's workflow migrations: batches (:mod:`jobq.storage.batches`)
and dependencies (:mod:`jobq.storage.dependencies`), appended to
:data:`~jobq.storage.postgres.schema.MIGRATIONS` in this order. Kept apart for size;
like every migration, never edited once released.
"""

BATCHES: tuple[str, ...] = (
    # Batches (jobq.storage.batches): jobs that are one unit, with callback jobs
    # inserted by the transaction in which the last of them ends.
    "ALTER TABLE jobq_jobs ADD COLUMN batch_id bigint, ADD COLUMN callback_of bigint",
    # A batch's jobs by status: its live counts, and cancelling its pending jobs.
    "CREATE INDEX jobq_jobs_batch ON jobq_jobs (batch_id, status) WHERE batch_id IS NOT NULL",
    "CREATE INDEX jobq_jobs_callback_of ON jobq_jobs (callback_of) WHERE callback_of IS NOT NULL",
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
)
"""Batches: jobs that are one unit, their counts kept by triggers, and the callback
jobs inserted by the transaction in which the last of them ends."""

DEPENDENCIES: tuple[str, ...] = (
    # Dependencies (jobq.storage.dependencies). A waiting job is pending with
    # run_at = 1e300 (WAITING_RUN_AT): every claim passes it over as not yet
    # due. waiting_for counts its dependencies not yet completed; waiting_run_at
    # is the run_at it asked for; a chain step gets the result of result_from.
    """
        ALTER TABLE jobq_jobs ADD COLUMN waiting_for integer NOT NULL DEFAULT 0,
            ADD COLUMN waiting_run_at double precision,
            ADD COLUMN result_from bigint,
            ADD COLUMN parent_result text,
            ADD COLUMN on_dependency_failure text
        """,
    """
        CREATE TABLE jobq_job_dependencies (
            depends_on_id bigint NOT NULL,
            job_id bigint NOT NULL REFERENCES jobq_jobs (id) ON DELETE CASCADE,
            resolved boolean NOT NULL DEFAULT false,
            PRIMARY KEY (depends_on_id, job_id)
        )
        """,
    "CREATE INDEX jobq_job_dependencies_job ON jobq_job_dependencies (job_id)",
    # The dependents of jobs that ended failed or cancelled (or were deleted
    # before they ended), by policy, then theirs in turn: a loop, not trigger
    # recursion (nested firings return at once), so chains of any length
    # cascade. Wakes workers (NOTIFY) for the jobs made runnable.
    """
        CREATE FUNCTION jobq_dependencies_ended(ids bigint[], statuses text[], ats float8[])
        RETURNS void LANGUAGE plpgsql AS $$
        DECLARE
            queues text[];
        BEGIN
            WHILE cardinality(ids) > 0 LOOP
                WITH e AS (SELECT * FROM unnest(ids, statuses, ats) AS e(id, status, at)),
                hits AS (SELECT d.job_id, count(*) AS n, max(e.at) AS at
                    FROM jobq_job_dependencies d JOIN e ON e.id = d.depends_on_id
                    WHERE NOT d.resolved GROUP BY d.job_id),
                ready AS (UPDATE jobq_jobs j SET waiting_for = j.waiting_for - hits.n,
                    run_at = CASE WHEN j.waiting_for = hits.n
                        THEN greatest(coalesce(j.waiting_run_at, hits.at), hits.at)
                        ELSE j.run_at END,
                    updated_at = hits.at
                    FROM hits WHERE j.id = hits.job_id AND j.status = 'pending'
                    AND j.run_at = 1e300 AND j.on_dependency_failure = 'run'
                    RETURNING j.queue, j.run_at)
                SELECT array_agg(DISTINCT queue) INTO queues FROM ready WHERE run_at < 1e300;
                PERFORM pg_notify('jobq_jobs', q) FROM unnest(queues) AS q;
                WITH e AS (SELECT * FROM unnest(ids, statuses, ats) AS e(id, status, at)),
                hit AS (SELECT DISTINCT ON (d.job_id) d.job_id, e.id, e.status, e.at
                    FROM jobq_job_dependencies d JOIN e ON e.id = d.depends_on_id
                    WHERE NOT d.resolved ORDER BY d.job_id, e.id),
                ended AS (UPDATE jobq_jobs j SET status = CASE
                        WHEN j.on_dependency_failure = 'fail' THEN 'failed' ELSE 'cancelled' END,
                    error_type = 'DependencyFailed',
                    error_message = 'job ' || hit.id || ' '
                        || CASE WHEN hit.status = 'deleted' THEN 'was deleted' ELSE hit.status END,
                    error_traceback = NULL, run_at = coalesce(j.waiting_run_at, j.created_at),
                    waiting_for = 0, finished_at = hit.at, updated_at = hit.at
                    FROM hit WHERE j.id = hit.job_id AND j.status = 'pending'
                    AND j.run_at = 1e300 AND j.on_dependency_failure IN ('cancel', 'fail')
                    RETURNING j.id, j.status, j.updated_at),
                resolved AS (UPDATE jobq_job_dependencies d SET resolved = true
                    FROM e WHERE d.depends_on_id = e.id AND NOT d.resolved)
                SELECT coalesce(array_agg(id), '{}'), coalesce(array_agg(status), '{}'),
                    coalesce(array_agg(updated_at), '{}')
                INTO ids, statuses, ats FROM ended;
            END LOOP;
        END $$
        """,
    # A completed dependency counts each waiting dependent down in its own
    # statement; the last one makes it runnable (and a chain step gets the
    # result). Statement-level over the changed rows, like the job counts.
    """
        CREATE FUNCTION jobq_dependencies_updated() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            queues text[];
            ids bigint[];
            statuses text[];
            ats float8[];
        BEGIN
            IF pg_trigger_depth() > 1 OR NOT EXISTS (
                SELECT 1 FROM jobq_dependency_after n
                JOIN jobq_job_dependencies d ON d.depends_on_id = n.id
                WHERE n.status IN ('completed', 'failed', 'cancelled') AND NOT d.resolved
            ) THEN
                RETURN NULL;
            END IF;
            WITH done AS (SELECT n.id, n.result, n.updated_at FROM jobq_dependency_after n
                JOIN jobq_dependency_before o ON o.id = n.id
                WHERE n.status = 'completed' AND o.status <> 'completed'),
            hits AS (SELECT d.job_id, count(*) AS n, max(done.updated_at) AS at
                FROM jobq_job_dependencies d JOIN done ON done.id = d.depends_on_id
                WHERE NOT d.resolved GROUP BY d.job_id),
            ready AS (UPDATE jobq_jobs j SET waiting_for = j.waiting_for - hits.n,
                run_at = CASE WHEN j.waiting_for = hits.n
                    THEN greatest(coalesce(j.waiting_run_at, hits.at), hits.at)
                    ELSE j.run_at END,
                parent_result = coalesce(
                    (SELECT done.result FROM done WHERE done.id = j.result_from), j.parent_result),
                updated_at = hits.at
                FROM hits WHERE j.id = hits.job_id AND j.status = 'pending' AND j.run_at = 1e300
                RETURNING j.queue, j.run_at),
            resolved AS (UPDATE jobq_job_dependencies d SET resolved = true
                FROM done WHERE d.depends_on_id = done.id AND NOT d.resolved)
            SELECT array_agg(DISTINCT queue) INTO queues FROM ready WHERE run_at < 1e300;
            PERFORM pg_notify('jobq_jobs', q) FROM unnest(queues) AS q;
            SELECT array_agg(n.id), array_agg(n.status), array_agg(n.updated_at)
            INTO ids, statuses, ats FROM jobq_dependency_after n
            JOIN jobq_dependency_before o ON o.id = n.id
            WHERE n.status IN ('failed', 'cancelled') AND o.status IN ('pending', 'processing');
            IF ids IS NOT NULL THEN
                PERFORM jobq_dependencies_ended(ids, statuses, ats);
            END IF;
            RETURN NULL;
        END $$
        """,
    """
        CREATE FUNCTION jobq_dependencies_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            ids bigint[];
            ats float8[];
        BEGIN
            IF pg_trigger_depth() > 1 THEN
                RETURN NULL;
            END IF;
            SELECT array_agg(o.id), array_agg(o.updated_at) INTO ids, ats
            FROM jobq_dependency_deleted o
            WHERE o.status IN ('pending', 'processing') AND EXISTS (
                SELECT 1 FROM jobq_job_dependencies d WHERE d.depends_on_id = o.id
                AND NOT d.resolved);
            IF ids IS NOT NULL THEN
                PERFORM jobq_dependencies_ended(
                    ids, array_fill('deleted'::text, ARRAY[cardinality(ids)]), ats);
            END IF;
            RETURN NULL;
        END $$
        """,
    """
        CREATE TRIGGER jobq_jobs_dependencies_updated AFTER UPDATE ON jobq_jobs
        REFERENCING OLD TABLE AS jobq_dependency_before NEW TABLE AS jobq_dependency_after
        FOR EACH STATEMENT EXECUTE FUNCTION jobq_dependencies_updated()
        """,
    """
        CREATE TRIGGER jobq_jobs_dependencies_deleted AFTER DELETE ON jobq_jobs
        REFERENCING OLD TABLE AS jobq_dependency_deleted
        FOR EACH STATEMENT EXECUTE FUNCTION jobq_dependencies_deleted()
        """,
)
"""Dependencies: jobs that wait for others to complete, and chains."""
