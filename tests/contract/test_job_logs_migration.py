"""Databases at schema version 3 upgrade in place to the current one (version 5 adds job
log lines), their jobs intact."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobq.job import JobStatus
from jobq.storage import SQLiteStorage
from jobq.storage.base import Storage
from jobq.storage.job_logs import JobLogLine, NewLogLine
from jobq.storage.postgres import schema as postgres_sql
from jobq.storage.sqlite import schema as sqlite_sql
from tests.contract._support import write_old_postgres_schema, write_old_sqlite_file
from tests.helpers import drop_postgres_schema, postgres_schema_url

T0 = 1_000_000.0
OLD_VERSION = 3

# (queue, name, status, finished_at)
OLD_ROWS = [
    ("default", "report", "pending", None),
    ("default", "report", "completed", T0 - 30),
    ("mail", "send", "failed", T0 - 10),
]


def _insert_sql(table: str, mark: str) -> str:
    return (
        f"INSERT INTO {table} (queue, name, payload, status, max_attempts, run_at, "
        f"created_at, updated_at, finished_at) VALUES ({mark}, {mark}, '[]', {mark}, 3, "
        f"{T0 - 100}, {T0 - 100}, {T0 - 100}, {mark})"
    )


def _check_upgraded(storage: Storage) -> None:
    jobs = storage.list_jobs()
    assert [(job.queue, job.name, job.status.value) for job in jobs] == [
        (queue, name, status) for queue, name, status, _ in OLD_ROWS
    ]
    counts = storage.stats(now=T0).queues["mail"].counts
    assert counts[JobStatus.FAILED] == 1
    failed = jobs[2].id
    assert storage.job_logs(failed) == []
    assert storage.append_job_log(failed, [NewLogLine(3, T0, "after the upgrade")]) == 1
    assert storage.job_logs(failed) == [JobLogLine(1, 3, T0, "after the upgrade")]
    assert storage.purge(older_than=T0, statuses=[JobStatus.FAILED]) == 1
    assert storage.job_logs(failed) == []


def test_a_version_3_sqlite_file_gains_job_logs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    write_old_sqlite_file(path, OLD_VERSION, _insert_sql, OLD_ROWS)
    with SQLiteStorage(path) as storage:
        _check_upgraded(storage)
        version = storage._db.conn().query("PRAGMA user_version")[0][0]
    assert version == sqlite_sql.SCHEMA_VERSION >= 4


@pytest.mark.postgres
def test_a_version_3_postgres_schema_gains_job_logs() -> None:
    import psycopg

    from jobq.storage.postgres import PostgresStorage

    url = postgres_schema_url()
    try:
        write_old_postgres_schema(url, OLD_VERSION, _insert_sql, OLD_ROWS)
        with PostgresStorage(url, clock="caller") as storage:
            _check_upgraded(storage)
        with psycopg.connect(url, autocommit=True) as conn:
            version = conn.execute("SELECT version FROM jobq_schema").fetchall()[0][0]
        assert version == postgres_sql.SCHEMA_VERSION >= 4
    finally:
        drop_postgres_schema(url)
