"""Databases written by older schemas upgrade in place: from version 2, unique keys
become per task and the kept job counts start from the rows already there; from
version 5, the attempt history and throughput counters start empty and fill on."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from jobq.job import JobStatus
from jobq.storage import SQLiteStorage
from jobq.storage.base import NewJob, Storage
from jobq.storage.postgres import schema as postgres_sql
from tests.contract._support import write_old_postgres_schema, write_old_sqlite_file
from tests.helpers import drop_postgres_schema, postgres_schema_url

T0 = 1_000_000.0
OLD_VERSION = 2

# (queue, name, status, unique_key, finished_at)
OLD_ROWS = [
    ("default", "report", "pending", "user:7", None),
    ("default", "report", "processing", None, None),
    ("default", "report", "completed", "user:7", T0 - 30),
    ("mail", "send", "pending", None, None),
    ("mail", "send", "failed", None, T0 - 10),
    ("mail", "send", "cancelled", None, T0 - 5),
    ("mail", "send", "completed", None, T0 - 200),
]


def _insert_sql(table: str, mark: str) -> str:
    return (
        f"INSERT INTO {table} (queue, name, payload, status, max_attempts, run_at, unique_key, "
        f"created_at, updated_at, finished_at) VALUES ({mark}, {mark}, '[]', {mark}, 3, "
        f"{T0 - 100}, {mark}, {T0 - 100}, {T0 - 100}, {mark})"
    )


def _check_upgraded(storage: Storage) -> None:
    stats = storage.stats(now=T0)
    default, mail = stats.queues["default"].counts, stats.queues["mail"].counts
    assert (
        default[JobStatus.PENDING],
        default[JobStatus.PROCESSING],
        default[JobStatus.COMPLETED],
    ) == (1, 1, 1)
    assert (
        mail[JobStatus.PENDING],
        mail[JobStatus.FAILED],
        mail[JobStatus.CANCELLED],
        mail[JobStatus.COMPLETED],
    ) == (1, 1, 1, 1)
    assert (stats.completed_last_minute, stats.failed_last_minute) == (1, 1)
    # The old key is still held for its own task, and free for another one.
    assert not storage.enqueue(NewJob("report", "[]", unique_key="user:7"), now=T0).created
    assert storage.enqueue(NewJob("send", "[]", unique_key="user:7"), now=T0).created
    after = storage.stats(now=T0)
    assert after.queues["default"].counts[JobStatus.PENDING] == 2  # counted from then on
    assert storage.oldest_runnable_age(now=T0) == 100.0


def test_a_version_2_sqlite_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    write_old_sqlite_file(path, OLD_VERSION, _insert_sql, OLD_ROWS)
    with SQLiteStorage(path) as storage:
        _check_upgraded(storage)
        conn = storage._db.conn()
        columns = [row[2] for row in conn.query("PRAGMA index_info('jobs_unique')")]
        assert columns == ["name", "unique_key"]


@pytest.mark.postgres
def test_a_version_2_postgres_schema_is_upgraded_in_place() -> None:
    import psycopg

    from jobq.storage.postgres import PostgresStorage

    url = postgres_schema_url()
    try:
        write_old_postgres_schema(url, OLD_VERSION, _insert_sql, OLD_ROWS)
        with PostgresStorage(url, clock="caller") as storage:
            _check_upgraded(storage)
        with psycopg.connect(url, autocommit=True) as conn:
            definition = conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'jobq_jobs_unique'"
            ).fetchall()[0][0]
            assert "(name, unique_key)" in definition
            version = conn.execute("SELECT version FROM jobq_schema").fetchall()[0][0]
            assert version == postgres_sql.SCHEMA_VERSION
    finally:
        drop_postgres_schema(url)


# Version 5 to 6: attempt history and throughput counters start empty, and fill
# from the upgrade on; the processing job of the old file fails into its history.
V5_ROWS = [("mail", "send", "processing", None, None), ("mail", "send", "completed", None, T0 - 9)]


def _v5_insert_sql(table: str, mark: str) -> str:
    return (
        f"INSERT INTO {table} (queue, name, payload, status, max_attempts, run_at, unique_key, "
        f"attempts, lease_owner, lease_token, lease_expires_at, started_at, created_at, "
        f"updated_at, finished_at) VALUES ({mark}, {mark}, '[]', {mark}, 1, {T0 - 100}, {mark}, "
        f"1, 'old:1:pool', 'tok', {T0 - 50}, {T0 - 80}, {T0 - 100}, {T0 - 100}, {mark})"
    )


def _check_history_after_upgrade(storage: Storage) -> None:
    from jobq.storage.history import JobHistory, ThroughputPoint

    assert isinstance(storage, JobHistory)
    running, done = (job.id for job in storage.list_jobs())
    assert storage.job_attempts(running) == storage.job_attempts(done) == []
    minute = T0 - T0 % 60
    assert storage.throughput(since=T0, until=T0 + 1) == [ThroughputPoint(minute, 0, 0)]
    assert storage.rescue_expired(now=T0).failed == (running,)
    (attempt,) = storage.job_attempts(running)
    assert (attempt.attempt, attempt.lease_owner, attempt.started_at, attempt.outcome) == (
        1,
        "old:1:pool",
        T0 - 80,
        "lease_expired",
    )
    assert storage.throughput(since=T0, until=T0 + 1) == [ThroughputPoint(minute, 0, 1)]
    assert storage.purge(older_than=T0 + 1, statuses=[JobStatus.FAILED]) == 1
    assert storage.job_attempts(running) == []


def test_a_version_5_sqlite_file_gains_attempt_history_and_counters(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    write_old_sqlite_file(path, 5, _v5_insert_sql, V5_ROWS)
    with SQLiteStorage(path) as storage:
        _check_history_after_upgrade(storage)
        assert storage._db.conn().query("PRAGMA user_version")[0][0] >= 6


@pytest.mark.postgres
def test_a_version_5_postgres_schema_gains_attempt_history_and_counters() -> None:
    from jobq.storage.postgres import PostgresStorage

    url = postgres_schema_url()
    try:
        write_old_postgres_schema(url, 5, _v5_insert_sql, V5_ROWS)
        with PostgresStorage(url, clock="caller") as storage:
            _check_history_after_upgrade(storage)
    finally:
        drop_postgres_schema(url)


# Version 5 had the worker registry without process identity nor busy threads.
WORKERS_OLD_VERSION = 5
OLD_WORKERS = [("web1:7:pool1", "web1", 7, "pool1", '["default"]', 4, 30.0, T0 - 10, T0 - 5)]


def _worker_insert_sql(table: str, mark: str) -> str:
    """The old worker rows go in through the helpers' insert of old rows."""
    workers = table.replace("jobs", "workers")
    return (
        f"INSERT INTO {workers} (owner, host, pid, name, queues, concurrency, lease_seconds, "
        f"started_at, last_seen_at) VALUES ({', '.join([mark] * 9)})"
    )


def _check_workers_upgraded(storage: Storage) -> None:
    from jobq.storage.workers import NewWorker, WorkerRegistry, WorkerThread

    assert isinstance(storage, WorkerRegistry)
    [old] = storage.live_workers(now=T0)
    assert (old.owner, old.concurrency, old.last_seen_at) == ("web1:7:pool1", 4, T0 - 5)
    assert (old.boot_id, old.pid_namespace, old.process_start, old.threads) == (
        None,
        None,
        None,
        (),
    )
    busy = (WorkerThread(1, "send", "jobq-pool1-1", T0 - 1),)
    assert storage.worker_seen("web1:7:pool1", now=T0, threads=busy)
    assert storage.live_workers(now=T0)[0].threads == busy
    storage.register_worker(
        NewWorker("web1:8:p", "web1", 8, "p", (), 1, 30.0, "boot", 4026531836, 99), now=T0
    )
    [new] = storage.host_workers("web1", boot_id="boot", pid_namespace=4026531836)
    assert (new.owner, new.process_start) == ("web1:8:p", 99)


def test_a_version_5_sqlite_file_gains_worker_identity_and_threads(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    write_old_sqlite_file(path, WORKERS_OLD_VERSION, _worker_insert_sql, OLD_WORKERS)
    with SQLiteStorage(path) as storage:
        _check_workers_upgraded(storage)


@pytest.mark.postgres
def test_a_version_5_postgres_schema_gains_worker_identity_and_threads() -> None:
    from jobq.storage.postgres import PostgresStorage

    url = postgres_schema_url()
    try:
        write_old_postgres_schema(url, WORKERS_OLD_VERSION, _worker_insert_sql, OLD_WORKERS)
        with PostgresStorage(url, clock="caller") as storage:
            _check_workers_upgraded(storage)
    finally:
        drop_postgres_schema(url)


@pytest.mark.postgres
def test_a_version_7_postgres_schema_gains_per_table_vacuum_settings() -> None:
    import psycopg

    from jobq.storage.postgres import PostgresStorage

    url = postgres_schema_url()
    try:
        write_old_postgres_schema(url, 7, _insert_sql, OLD_ROWS)
        with PostgresStorage(url, clock="caller") as storage:
            _check_upgraded(storage)
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT c.relname, c.reloptions FROM pg_class c "
                "WHERE c.relnamespace = current_schema()::regnamespace AND c.relname IN "
                "('jobq_jobs', 'jobq_job_counts', 'jobq_throughput')"
            ).fetchall()
        options = {name: dict(o.split("=") for o in opts) for name, opts in rows}
        assert set(options) == {"jobq_jobs", "jobq_job_counts", "jobq_throughput"}
        for table in options.values():
            assert table["autovacuum_vacuum_scale_factor"] == "0.01"
        assert options["jobq_jobs"]["autovacuum_vacuum_insert_scale_factor"] == "0.05"
    finally:
        drop_postgres_schema(url)


# Job expiry: the jobs already there have none, and new ones keep theirs.
def _check_expiry_after_upgrade(storage: Storage) -> None:
    assert all(job.expires_at is None for job in storage.list_jobs())
    job = storage.enqueue(NewJob("send", "[]", expires_at=T0 + 5), now=T0).job
    assert storage.expire_jobs(now=T0 + 5) == [job.id]
    assert storage.stats(now=T0).queues["default"].counts[JobStatus.CANCELLED] == 1


def test_a_version_7_sqlite_file_gains_job_expiry(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    write_old_sqlite_file(path, 7, _insert_sql, OLD_ROWS)
    with SQLiteStorage(path) as storage:
        _check_upgraded(storage)
        _check_expiry_after_upgrade(storage)


@pytest.mark.postgres
def test_a_version_8_postgres_schema_gains_job_expiry() -> None:
    from jobq.storage.postgres import PostgresStorage

    url = postgres_schema_url()
    try:
        write_old_postgres_schema(url, 8, _insert_sql, OLD_ROWS)
        with PostgresStorage(url, clock="caller") as storage:
            _check_upgraded(storage)
            _check_expiry_after_upgrade(storage)
    finally:
        drop_postgres_schema(url)


# Versions 7 (SQLite) and 8 (PostgreSQL) had no limit keys: their jobs form the
# keyless group of a task limited per key.
KEYLESS_ROWS = [
    ("default", "sync", "processing", None, None),
    ("default", "sync", "pending", None, None),
]


def _check_limit_keys_after_upgrade(storage: Storage) -> None:
    from jobq.storage.base import TaskLimit

    assert [job.limit_key for job in storage.list_jobs()] == [None, None]
    storage.enqueue(NewJob("sync", "[]", limit_key="acct-1"), now=T0)
    limits = {"sync": TaskLimit(concurrency=1, per_key=True)}
    claimed = storage.claim(
        ["default"], owner="w", now=T0, lease_seconds=30, limit=9, limits=limits
    )
    assert [job.limit_key for job in claimed] == ["acct-1"]  # the old keyless one still runs


def test_a_version_7_sqlite_file_gains_limit_keys(tmp_path: Path) -> None:
    path = tmp_path / "v7.db"
    write_old_sqlite_file(path, 7, _insert_sql, KEYLESS_ROWS)
    with SQLiteStorage(path) as storage:
        _check_limit_keys_after_upgrade(storage)


@pytest.mark.postgres
def test_a_version_8_postgres_schema_gains_limit_keys() -> None:
    from jobq.storage.postgres import PostgresStorage

    url = postgres_schema_url()
    try:
        write_old_postgres_schema(url, 8, _insert_sql, KEYLESS_ROWS)
        with PostgresStorage(url, clock="caller") as storage:
            _check_limit_keys_after_upgrade(storage)
    finally:
        drop_postgres_schema(url)


def _check_throttle_index(storage: Storage) -> None:
    _check_upgraded(storage)
    # The old completed row (created at T0 - 100) holds its key for a throttle of 200 s.
    held = storage.enqueue(NewJob("report", "[]", unique_key="user:7", throttle=200), now=T0)
    assert not held.created


def test_a_version_7_sqlite_file_gains_the_throttle_index(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    write_old_sqlite_file(path, 7, _insert_sql, OLD_ROWS)
    with SQLiteStorage(path) as storage:
        _check_throttle_index(storage)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "jobs_key_created" in names


@pytest.mark.postgres
def test_a_version_8_postgres_schema_gains_the_throttle_index() -> None:
    import psycopg

    from jobq.storage.postgres import PostgresStorage

    url = postgres_schema_url()
    try:
        write_old_postgres_schema(url, 8, _insert_sql, OLD_ROWS)
        with PostgresStorage(url, clock="caller") as storage:
            _check_throttle_index(storage)
        with psycopg.connect(url) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() "
                "AND indexname = 'jobq_jobs_key_created'"
            ).fetchone()
        assert found is not None
    finally:
        drop_postgres_schema(url)


# SQLite files of version 8 and PostgreSQL schemas of version 9 had no batches: their
# jobs belong to none, and batches work at once after the upgrade.
def _check_batches_after_upgrade(storage: Storage) -> None:
    from jobq.storage.base import Completion
    from jobq.storage.batches import NewBatch

    _check_upgraded(storage)
    assert {job.batch_id for job in storage.list_jobs()} == {None}
    batch = storage.create_batch(NewBatch(on_complete="report"), now=T0)
    (job_id,) = storage.enqueue_in_batch(batch.id, [NewJob("send", "[]", queue="q")], now=T0)
    storage.seal_batch(batch.id, now=T0)
    (claimed,) = storage.claim(["q"], owner="w", now=T0, lease_seconds=30)
    assert claimed.id == job_id
    assert claimed.lease_token is not None
    storage.complete_many([Completion(job_id, claimed.lease_token)], now=T0 + 1)
    done = storage.batch(batch.id)
    assert done is not None
    assert done.finished_at == T0 + 1
    assert len(done.callback_job_ids) == 1


def test_a_version_8_sqlite_file_gains_batches(tmp_path: Path) -> None:
    path = tmp_path / "v8.db"
    write_old_sqlite_file(path, 8, _insert_sql, OLD_ROWS)
    with SQLiteStorage(path) as storage:
        _check_batches_after_upgrade(storage)


@pytest.mark.postgres
def test_a_version_9_postgres_schema_gains_batches() -> None:
    from jobq.storage.postgres import PostgresStorage

    url = postgres_schema_url()
    try:
        write_old_postgres_schema(url, 9, _insert_sql, OLD_ROWS)
        with PostgresStorage(url, clock="caller") as storage:
            _check_batches_after_upgrade(storage)
    finally:
        drop_postgres_schema(url)
