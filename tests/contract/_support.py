"""Helpers shared by the storage contract tests."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jobq.job import Job, JobError
from jobq.storage.base import Storage

T0 = 1_000_000.0
BOOM = JobError("ValueError", "boom", "Traceback (most recent call last): ...")


def claim_one(
    storage: Storage,
    now: float = T0,
    *,
    queue: str = "default",
    lease: float = 30.0,
    owner: str = "w1",
) -> Job:
    """Claim from ``queue`` and insist on exactly one job."""
    jobs = storage.claim([queue], owner=owner, now=now, lease_seconds=lease)
    assert len(jobs) == 1, jobs
    return jobs[0]


def token(job: Job) -> str:
    """The lease token of a claimed job."""
    assert job.lease_token is not None
    return job.lease_token


InsertSql = Callable[[str, str], str]
"""``insert_sql(table, placeholder)``: the INSERT of one old row into ``table``."""


def write_old_sqlite_file(
    path: Path, version: int, insert_sql: InsertSql, rows: Sequence[Sequence[Any]]
) -> None:
    """A SQLite file as jobq's schema ``version`` left it, holding ``rows``."""
    from jobq.storage.sqlite.schema import MIGRATIONS

    raw = sqlite3.connect(path, isolation_level=None)
    try:
        for migration in MIGRATIONS[:version]:
            for statement in migration:
                raw.execute(statement)
        raw.execute(f"PRAGMA user_version = {version}")
        raw.executemany(insert_sql("jobs", "?"), rows)
    finally:
        raw.close()


def write_old_postgres_schema(
    url: str, version: int, insert_sql: InsertSql, rows: Sequence[Sequence[Any]]
) -> None:
    """The schema of ``url`` as jobq's schema ``version`` left it, holding ``rows``."""
    import psycopg

    from jobq.storage.postgres.schema import MIGRATIONS

    with psycopg.connect(url, autocommit=True) as conn:
        for migration in MIGRATIONS[:version]:
            for statement in migration:
                conn.execute(statement)
        conn.execute("CREATE TABLE jobq_schema (version integer NOT NULL)")
        conn.execute("INSERT INTO jobq_schema (version) VALUES (%s)", (version,))
        with conn.cursor() as cursor:
            cursor.executemany(insert_sql("jobq_jobs", "%s"), rows)
