"""The SQL text that :class:`~jobq.storage.postgres.PostgresStorage` runs.

Times are epoch seconds in ``double precision`` columns, as on SQLite. Every
statement reads "now" through :data:`NOW`: the caller's time when one is
passed, else the database server's clock, so hosts with skewed clocks agree
on when a lease lapses.

Rule: imports only the shared row columns and this backend's schema; runs nothing.
"""

from __future__ import annotations

from .._rows import COLS, SCHEDULE_COLS
from .schema import ANY_CHANGE, COUNTED

CHANNEL = "jobq_jobs"
"""LISTEN/NOTIFY channel; the payload is the queue name of the new jobs."""

NOW = "coalesce(%(now)s::float8, extract(epoch from statement_timestamp())::float8)"


_COLUMNS = (
    "queue, name, payload, priority, status, max_attempts, run_at, unique_key, "
    "created_at, updated_at, expires_at, limit_key"
)

_LIVE_KEY = "unique_key IS NOT NULL AND status IN ('pending', 'processing')"

_INSERT_ONE = (
    f"INSERT INTO jobq_jobs ({_COLUMNS}) VALUES (%(queue)s, %(name)s, %(payload)s, "
    f"%(priority)s, 'pending', %(max_attempts)s, coalesce(%(run_at)s::float8, {NOW}), "
    f"%(unique_key)s, {NOW}, {NOW}, %(expires_at)s, %(limit_key)s)"
)
ENQUEUE = (
    f"WITH ins AS ({_INSERT_ONE} ON CONFLICT (name, unique_key) WHERE {_LIVE_KEY} DO NOTHING "
    "RETURNING id, run_at, created_at, queue) "
    f"SELECT ins.id, ins.run_at, ins.created_at, pg_notify('{CHANNEL}', ins.queue) FROM ins"
)
"""Returns id, run_at and created_at: the caller has the rest of the new job."""
ENQUEUE_KEYLESS = f"{_INSERT_ONE} RETURNING id, run_at, created_at, pg_notify('{CHANNEL}', queue)"
"""ENQUEUE of a job without a unique key: nothing can conflict, so a plain insert
that notifies in its RETURNING (ON CONFLICT costs a speculative insertion, about
20 µs; the CTE that a conflict's empty result needs, about 19 µs more)."""
LIVE_BY_KEY = f"SELECT {COLS} FROM jobq_jobs WHERE name = %s AND unique_key = %s AND {_LIVE_KEY}"
"""The live job of a task holding a unique key (keys are scoped to their task)."""
ENQUEUE_REPLACE = (
    f"{_INSERT_ONE} ON CONFLICT (name, unique_key) WHERE {_LIVE_KEY} DO UPDATE SET "
    "payload = excluded.payload, priority = excluded.priority, run_at = excluded.run_at, "
    "updated_at = excluded.updated_at WHERE jobq_jobs.status = 'pending' "
    f"RETURNING {COLS}, xmax = 0"
)
"""ENQUEUE with ``on_duplicate="replace"``: inserts, or gives the pending holder of
the key the new payload, priority and run time; returns the row and whether it was
inserted. No row when the holder is processing: it is then locked by this
transaction (ON CONFLICT DO UPDATE locks the row even when its WHERE is false)."""
RELEASE_KEY = (
    "UPDATE jobq_jobs SET unique_key = NULL "
    "WHERE name = %s AND unique_key = %s AND status = 'processing'"
)
"""A processing holder of a task's key gives it up to a replacing enqueue."""
KEY_LOCK = "SELECT pg_advisory_xact_lock(hashtext('jobq-key:' || %s), hashtext(%s))"
"""Throttled enqueues of one task and key, one at a time until commit (task name, key)."""
RECENT_BY_KEY = (
    f"SELECT {COLS} FROM jobq_jobs WHERE name = %(name)s AND unique_key = %(unique_key)s "
    f"AND created_at > {NOW} - %(throttle)s ORDER BY created_at DESC LIMIT 1"
)
"""The newest job of a task with a key created within ``throttle`` seconds, in any
status (index jobq_jobs_key_created)."""

# Rows come out of unnest() WITH ORDINALITY in order and take their identity
# values in that order, so sorted ids follow the arrays.
# "now" is read once per statement (a materialised CTE), not three times per row.
_ONCE = f"t AS MATERIALIZED (SELECT {NOW} AS now)"
ENQUEUE_ARRAYS = (
    f"WITH {_ONCE}, ins AS (INSERT INTO jobq_jobs ({_COLUMNS}) "
    "SELECT q, n, p, pr, 'pending', m, coalesce(r, t.now), NULL, t.now, t.now, x, k "
    "FROM t, unnest(%(queues)s::text[], %(names)s::text[], %(payloads)s::text[], "
    "%(priorities)s::int[], %(max_attempts)s::int[], %(run_ats)s::float8[], "
    "%(expires_ats)s::float8[], %(limit_keys)s::text[]) "
    "WITH ORDINALITY AS v(q, n, p, pr, m, r, x, k, i) ORDER BY i RETURNING id) "
    "SELECT array_agg(id ORDER BY id) FROM ins"
)
ENQUEUE_PAYLOADS = (
    f"WITH {_ONCE}, ins AS (INSERT INTO jobq_jobs ({_COLUMNS}) "
    "SELECT %(queue)s, %(name)s, p, %(priority)s, 'pending', %(max_attempts)s, "
    "coalesce(%(run_at)s::float8, t.now), NULL, t.now, t.now, %(expires_at)s::float8, NULL "
    "FROM t, unnest(%(payloads)s::text[]) WITH ORDINALITY AS v(p, i) ORDER BY i RETURNING id) "
    f"SELECT array_agg(id ORDER BY id), pg_notify('{CHANNEL}', %(queue)s) FROM ins"
)
NOTIFY = f"SELECT pg_notify('{CHANNEL}', q) FROM unnest(%s::text[]) AS q"

# Claims read each queue on its own (LATERAL over the queue names), down
# jobq_jobs_claim (queue, priority DESC, run_at, id) WHERE status = 'pending', and
# stop after LIMIT rows of it: `queue = ANY(...)` in one scan cannot follow that
# index's order across queues, so PostgreSQL sorted every pending row. Each queue
# locks (SKIP LOCKED) up to the limit, the merge keeps the best ones; the others are
# unlocked at commit. Future jobs of a higher priority are passed over in the index
# (run_at <= now is an index condition: no heap read), the only rows read in vain.
_UNPAUSED = (
    "q AS (SELECT u.queue FROM unnest(%(queues)s::text[]) AS u(queue) "
    "WHERE NOT EXISTS (SELECT 1 FROM jobq_paused_queues p WHERE p.queue = u.queue))"
)
_PER_QUEUE = (
    "SELECT id, j.queue, name, priority, run_at FROM jobq_jobs j WHERE status = 'pending' "
    f"AND j.queue = q.queue AND run_at <= {NOW} "
    # Expired jobs are passed over (the expiry sweep ends them); the row is read anyway.
    f"AND (expires_at IS NULL OR expires_at > {NOW})"
)
_IN_ORDER = "ORDER BY priority DESC, run_at, id LIMIT %(limit)s"
CLAIM = (
    f"WITH {_UNPAUSED}, c AS MATERIALIZED (SELECT l.id FROM q CROSS JOIN LATERAL "
    f"({_PER_QUEUE} {_IN_ORDER} FOR UPDATE SKIP LOCKED) AS l "
    "ORDER BY l.priority DESC, l.run_at, l.id LIMIT %(limit)s) "
    "UPDATE jobq_jobs j SET status = 'processing', attempts = j.attempts + 1, "
    "lease_owner = %(owner)s, lease_token = replace(gen_random_uuid()::text, '-', ''), "
    f"lease_expires_at = {NOW} + %(lease)s, started_at = {NOW}, updated_at = {NOW} "
    f"FROM c WHERE j.id = c.id RETURNING {', '.join('j.' + c for c in COLS.split(', '))}"
)
# With task limits: candidates first (skipping tasks at their limit), then the
# chosen ones are leased by id.
# Per-key limits leave out the (task, limit key) groups at their limit (the arrays
# %(group_names)s and %(group_keys)s, '' for no key; hashed once); their jobs are
# passed over in the index one by one (a heap read each), so a blocked key costs in
# proportion to its jobs ahead of the first runnable one.
CANDIDATES = (
    f"WITH {_UNPAUSED} SELECT l.id, l.queue, l.name, l.limit_key FROM q CROSS JOIN LATERAL "
    f"({_PER_QUEUE.replace('name,', 'name, limit_key,')} AND name <> ALL(%(blocked)s::text[]) "
    "AND (name, coalesce(limit_key, '')) NOT IN (SELECT g.n, g.k FROM "
    "unnest(%(group_names)s::text[], %(group_keys)s::text[]) AS g(n, k)) "
    f"{_IN_ORDER} FOR UPDATE SKIP LOCKED) "
    "AS l ORDER BY l.priority DESC, l.run_at, l.id LIMIT %(limit)s"
)
CLAIM_IDS = (
    "UPDATE jobq_jobs j SET status = 'processing', attempts = j.attempts + 1, "
    "lease_owner = %(owner)s, lease_token = replace(gen_random_uuid()::text, '-', ''), "
    f"lease_expires_at = {NOW} + %(lease)s, started_at = {NOW}, updated_at = {NOW} "
    f"WHERE id = ANY(%(ids)s::bigint[]) RETURNING {COLS}"
)
LIMIT_LOCK = "SELECT pg_advisory_xact_lock(hashtext('jobq-limit:' || %s))"
RUNNING_OF = (
    "SELECT name, limit_key, count(*) FROM jobq_jobs WHERE status = 'processing' "
    "AND name = ANY(%s::text[]) GROUP BY name, limit_key"
)
FORGET_STARTS = (
    f"DELETE FROM jobq_rate_starts WHERE key = %(key)s AND started_at <= {NOW} - %(per)s"
)
NEWEST_START = "SELECT max(started_at) FROM jobq_rate_starts WHERE key = %(key)s"
FORGET_STARTS_BEFORE = (
    "DELETE FROM jobq_rate_starts WHERE key = %(key)s AND started_at <= %(before)s"
)
COUNT_STARTS = (
    f"SELECT count(*) FROM jobq_rate_starts WHERE key = %(key)s AND started_at > {NOW} - %(per)s"
)
STARTS_BY_KEY = (
    "SELECT limit_key, count(*) FROM jobq_rate_starts WHERE key = %(key)s "
    f"AND started_at > {NOW} - %(per)s GROUP BY limit_key"
)
RECORD_STARTS = (
    f"INSERT INTO jobq_rate_starts (key, limit_key, started_at) SELECT k, lk, {NOW} "
    "FROM unnest(%(keys)s::text[], %(limit_keys)s::text[]) AS s(k, lk)"
)
HAS_RUNNABLE = (
    f"WITH {_UNPAUSED} SELECT EXISTS (SELECT 1 FROM q WHERE EXISTS (SELECT 1 FROM jobq_jobs j "
    f"WHERE status = 'pending' AND j.queue = q.queue AND run_at <= {NOW}))"
)
"""One seek per queue in jobq_jobs_due (queue, run_at)."""

EXPIRE = (
    "WITH x AS (SELECT id FROM jobq_jobs WHERE expires_at IS NOT NULL AND status = 'pending' "
    f"AND expires_at <= {NOW} ORDER BY expires_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
    f"UPDATE jobq_jobs j SET status = 'cancelled', finished_at = {NOW}, updated_at = {NOW}, "
    "error_type = 'Expired', error_message = 'expired at ' || to_char(to_timestamp(j.expires_at) "
    "AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || CASE WHEN j.attempts = 0 "
    "THEN ' before it started' ELSE ' before attempt ' || (j.attempts + 1) || ' started' END, "
    "error_traceback = NULL FROM x WHERE j.id = x.id RETURNING j.id"
)
"""End up to %(limit)s pending jobs past their expiry as cancelled, earliest first (rows
another transaction holds are left to it)."""

_HELD = "id = %(id)s AND lease_token = %(token)s AND status = 'processing'"
RENEW = (
    f"UPDATE jobq_jobs j SET lease_expires_at = {NOW} + %(lease)s, updated_at = {NOW} "
    "FROM unnest(%(ids)s::bigint[], %(tokens)s::text[]) AS l(id, token) "
    "WHERE j.id = l.id AND j.lease_token = l.token AND j.status = 'processing' "
    "RETURNING j.id, j.cancel_requested"
)
PROGRESS = f"UPDATE jobq_jobs SET progress = %(progress)s, updated_at = {NOW} WHERE {_HELD}"
COMPLETE = (
    f"UPDATE jobq_jobs SET status = 'completed', result = %(result)s, finished_at = {NOW}, "
    f"updated_at = {NOW}, lease_expires_at = NULL WHERE {_HELD}"
)
COMPLETE_MANY = (
    f"UPDATE jobq_jobs j SET status = 'completed', result = v.result, finished_at = {NOW}, "
    f"updated_at = {NOW}, lease_expires_at = NULL "
    "FROM unnest(%(ids)s::bigint[], %(tokens)s::text[], %(results)s::text[]) "
    "AS v(id, token, result) "
    "WHERE j.id = v.id AND j.lease_token = v.token AND j.status = 'processing' RETURNING j.id"
)
FINISH_CANCELLED = (
    f"UPDATE jobq_jobs SET status = 'cancelled', finished_at = {NOW}, updated_at = {NOW}, "
    f"lease_expires_at = NULL WHERE {_HELD}"
)
RELEASE = (
    "UPDATE jobq_jobs SET status = CASE WHEN cancel_requested THEN 'cancelled' "
    f"ELSE 'pending' END, run_at = coalesce(%(run_at)s::float8, {NOW}), "
    f"attempts = greatest(attempts - 1, 0), finished_at = CASE WHEN cancel_requested "
    f"THEN {NOW} END, lease_expires_at = NULL, updated_at = {NOW} WHERE {_HELD} RETURNING status"
)
_RETRYABLE = (
    "(NOT cancel_requested AND %(retry_at)s::float8 IS NOT NULL AND attempts < max_attempts)"
)
FAIL = (
    "UPDATE jobq_jobs SET status = CASE WHEN cancel_requested THEN 'cancelled' "
    f"WHEN {_RETRYABLE} THEN 'pending' ELSE 'failed' END, "
    f"run_at = CASE WHEN {_RETRYABLE} THEN %(retry_at)s::float8 ELSE run_at END, "
    f"finished_at = CASE WHEN {_RETRYABLE} THEN NULL ELSE {NOW} END, "
    "error_type = %(type)s, error_message = %(message)s, error_traceback = %(traceback)s, "
    f"lease_expires_at = NULL, updated_at = {NOW} WHERE {_HELD} RETURNING status"
)
_REQUEUE = "(NOT cancel_requested AND attempts < max_attempts)"
# The victims are picked in a CTE: an `IN (SELECT ... LIMIT)` may be run again
# per row, which does not honour the limit.
RESCUE = (
    "WITH c AS MATERIALIZED (SELECT id FROM jobq_jobs WHERE status = 'processing' "
    f"AND lease_expires_at <= {NOW} ORDER BY lease_expires_at LIMIT %(limit)s "
    "FOR UPDATE SKIP LOCKED) "
    "UPDATE jobq_jobs j SET status = CASE WHEN cancel_requested THEN 'cancelled' "
    f"WHEN {_REQUEUE} THEN 'pending' ELSE 'failed' END, "
    f"finished_at = CASE WHEN {_REQUEUE} THEN NULL ELSE {NOW} END, "
    "error_type = 'LeaseExpired', error_message = 'lease expired (worker died?) during attempt ' "
    "|| attempts || ' of ' || max_attempts || '; last held by ' || coalesce(lease_owner, '?'), "
    f"error_traceback = NULL, lease_expires_at = NULL, updated_at = {NOW} "
    "FROM c WHERE j.id = c.id AND j.status = 'processing' RETURNING j.id, j.status"
)
CANCEL = (
    "UPDATE jobq_jobs SET status = CASE WHEN status = 'pending' THEN 'cancelled' "
    "ELSE status END, cancel_requested = CASE WHEN status = 'processing' THEN true "
    f"ELSE cancel_requested END, finished_at = CASE WHEN status = 'pending' THEN {NOW} "
    f"ELSE finished_at END, updated_at = {NOW} "
    f"WHERE id = %(id)s AND status IN ('pending', 'processing') RETURNING {COLS}"
)
RETRY = (
    "UPDATE jobq_jobs SET status = 'pending', attempts = 0, expires_at = NULL, "
    f"run_at = coalesce(%(run_at)s::float8, "
    f"{NOW}), cancel_requested = false, result = NULL, progress = NULL, started_at = NULL, "
    "finished_at = NULL, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, "
    f"updated_at = {NOW} WHERE id = %(id)s AND status IN ('failed', 'cancelled') RETURNING {COLS}"
)
_SUMS = ", ".join(f"sum({status})::bigint AS {status}" for status in COUNTED)
STATS_QUEUES = (
    "SELECT c.queue, c.pending, c.processing, c.completed, c.failed, c.cancelled, c.rows, "
    "CASE WHEN c.pending > 0 THEN (SELECT count(*) FROM jobq_jobs WHERE status = 'pending' "
    "AND queue = c.queue AND run_at > %(now)s AND run_at < 1e300) END, "
    "CASE WHEN c.pending > 0 THEN (SELECT min(run_at) FROM jobq_jobs WHERE status = 'pending' "
    "AND queue = c.queue AND run_at <= %(now)s) END, "
    # Waiting for dependencies (jobq.storage.dependencies): run_at = 1e300.
    "CASE WHEN c.pending > 0 THEN (SELECT count(*) FROM jobq_jobs WHERE status = 'pending' "
    "AND queue = c.queue AND run_at = 1e300) END "
    f"FROM (SELECT queue, {_SUMS}, count(*) AS rows FROM jobq_job_counts GROUP BY queue) AS c"
)
"""Per queue: jobs per status (summed from the rows of changes), how many rows were
summed, and for queues holding pending jobs, those scheduled for later and the
oldest due run_at, each read off jobq_jobs_due. ``now`` is the snapshot's time."""
FOLD_AFTER_ROWS = 2000
"""Rows of changes beyond one per queue above which they are folded."""
FOLD_COUNTS = (
    "WITH folded AS (DELETE FROM jobq_job_counts WHERE (SELECT count(*) - "
    "count(DISTINCT queue) FROM jobq_job_counts) > %(extra)s "
    f"RETURNING *) INSERT INTO jobq_job_counts SELECT * FROM (SELECT queue, {_SUMS} "
    f"FROM folded GROUP BY queue) AS net WHERE {ANY_CHANGE}"
)
"""Replace the rows of changes by one per queue (none when all its counts are 0),
once more than ``extra`` rows could go. Rows that other transactions append
meanwhile are not in its snapshot, so they stay: no change is lost or counted twice."""
COUNTS_LOCK = 0x6A6F6263  # "jobc": held while folding, so one process folds at a time
FOLD_IF_FREE = "SELECT pg_try_advisory_xact_lock(%s)"
OLDEST_DUE = (
    "WITH RECURSIVE queues(queue) AS ("
    "(SELECT queue FROM jobq_jobs WHERE status = 'pending' ORDER BY queue LIMIT 1) "
    "UNION ALL SELECT (SELECT j.queue FROM jobq_jobs j WHERE j.status = 'pending' "
    "AND j.queue > queues.queue ORDER BY j.queue LIMIT 1) FROM queues "
    "WHERE queues.queue IS NOT NULL) "
    "SELECT min((SELECT min(run_at) FROM jobq_jobs j WHERE j.status = 'pending' "
    f"AND j.queue = queues.queue)), {NOW} FROM queues WHERE queues.queue IS NOT NULL "
    "AND NOT EXISTS (SELECT 1 FROM jobq_paused_queues p WHERE p.queue = queues.queue)"
)
"""The earliest run_at of a pending job in an unpaused queue, and now: the queues are
found by skipping through an index of pending jobs (one seek each), then one seek
per queue."""
STATS_RECENT = (
    "SELECT status, count(*) FROM jobq_jobs WHERE status IN ('completed', 'failed') "
    f"AND finished_at IS NOT NULL AND finished_at > {NOW} - 60 AND finished_at <= {NOW} "
    "GROUP BY status"
)
CURRENT_TIME = f"SELECT {NOW}"
PURGE = (
    "WITH c AS MATERIALIZED (SELECT id FROM jobq_jobs WHERE status = %(status)s "
    "AND finished_at IS NOT NULL AND finished_at < %(older_than)s LIMIT %(limit)s) "
    "DELETE FROM jobq_jobs j USING c WHERE j.id = c.id"
)
PURGE_BATCHES = (
    "WITH c AS MATERIALIZED (SELECT id FROM jobq_batches b WHERE finished_at < %(older_than)s "
    "AND NOT EXISTS (SELECT 1 FROM jobq_jobs WHERE batch_id = b.id) "
    "AND NOT EXISTS (SELECT 1 FROM jobq_jobs WHERE callback_of = b.id) LIMIT %(limit)s) "
    "DELETE FROM jobq_batches t USING c WHERE t.id = c.id"
)
PAUSED_LOCK = 0x6A6F6270  # "jobp": pauses take turns, so the limit holds
PAUSE_LOCK = "SELECT pg_advisory_xact_lock(%s)"
PAUSE = (
    f"INSERT INTO jobq_paused_queues (queue, paused_at) SELECT %(queue)s, {NOW} "
    "WHERE (SELECT count(*) FROM jobq_paused_queues) < %(limit)s "
    "ON CONFLICT (queue) DO NOTHING"
)
"""Pause a queue while fewer than ``limit`` are paused (under PAUSE_LOCK: no race)."""

SCHEDULE_BY_NAME = f"SELECT {SCHEDULE_COLS} FROM jobq_schedules WHERE name = %s"
UPSERT_SCHEDULE = (
    "INSERT INTO jobq_schedules AS s (name, spec, next_fire_at, updated_at) "
    f"VALUES (%(name)s, %(spec)s, %(next)s, {NOW}) ON CONFLICT (name) DO UPDATE "
    f"SET spec = excluded.spec, next_fire_at = excluded.next_fire_at, updated_at = {NOW} "
    "WHERE s.spec <> excluded.spec"
)
FIRE = (
    f"UPDATE jobq_schedules SET next_fire_at = %(next)s, updated_at = {NOW} "
    "WHERE name = %(name)s AND next_fire_at = %(fire_at)s AND NOT paused "
    f"AND %(fire_at)s <= {NOW}"
)
FIRED = (
    "UPDATE jobq_schedules SET last_fire_at = %(fire_at)s, last_job_id = %(job)s "
    "WHERE name = %(name)s"
)
PAUSE_SCHEDULE = (
    "UPDATE jobq_schedules SET paused = %(paused)s, "
    f"next_fire_at = coalesce(%(next)s::float8, next_fire_at), updated_at = {NOW} "
    f"WHERE name = %(name)s RETURNING {SCHEDULE_COLS}"
)
