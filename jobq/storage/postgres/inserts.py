"""Jobs into PostgreSQL: one at a time, many in one transaction, and the bulk
path; each transaction that adds jobs notifies the listening worker pools.

The :class:`~jobq.storage.parts.Inserts` part of
:class:`~jobq.storage.postgres.PostgresStorage`; its arguments were checked by
:class:`~jobq.storage.checked.CheckedStorage`.

Rule: runs SQL only; imports this backend's connections and SQL text, the
shared rows and the storage contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import psycopg

from .._rows import job_row, row_to_job
from ..base import Enqueued, Job, JobStatus, NewJob, StorageError
from . import sql
from .connection import RETRIES, Database
from .duplicates import replace, throttled


class Inserted(NamedTuple):
    """What :data:`~jobq.storage.postgres.sql.ENQUEUE` returns of the new row."""

    id: int
    run_at: float
    created_at: float
    notified: Any


def _new_job(job: NewJob, row: Inserted) -> Job:
    """The job just inserted: the caller's fields and the row's id and times."""
    return Job(
        row.id,
        job.queue,
        job.name,
        job.payload,
        job.priority,
        JobStatus.PENDING,
        0,
        job.max_attempts,
        row.run_at,
        None,
        None,
        None,
        None,
        None,
        None,
        job.unique_key,
        False,
        row.created_at,
        None,
        None,
        row.created_at,
        job.expires_at,
        job.limit_key,
    )


def _enqueue_params(job: NewJob, now: float | None) -> dict[str, Any]:
    return {
        "queue": job.queue,
        "name": job.name,
        "payload": job.payload,
        "priority": job.priority,
        "max_attempts": job.max_attempts,
        "run_at": job.run_at,
        "unique_key": job.unique_key,
        "now": now,
        "expires_at": job.expires_at,
        "limit_key": job.limit_key,
    }


class PostgresInserts:
    """Stores new jobs in one PostgreSQL database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def enqueue(self, job: NewJob, now: float) -> Enqueued:
        params = _enqueue_params(job, self._db.now(now))
        if job.on_duplicate == "replace":
            with self._db.conn() as conn, conn.transaction():
                return replace(conn, job, params)
        if job.throttle is not None:
            with self._db.conn() as conn, conn.transaction():
                return insert_keyed(conn, job, params["now"])
        statement = sql.ENQUEUE if job.unique_key is not None else sql.ENQUEUE_KEYLESS
        for _ in range(RETRIES):
            rows = self._db.run(statement, params)
            if rows:
                return Enqueued(_new_job(job, Inserted._make(rows[0])), True)
            # The key is held by a live job; it may finish before we read it.
            found = self._db.run(sql.LIVE_BY_KEY, (job.name, job.unique_key))
            if found:
                return Enqueued(row_to_job(job_row(found[0])), False)
        raise StorageError(f"unique_key {job.unique_key!r} kept changing hands; try again")

    def enqueue_many(self, jobs: Sequence[NewJob], now: float) -> list[int]:
        with self._db.conn() as conn, conn.transaction():
            ids = insert_jobs(conn, jobs, self._db.now(now))
            conn.execute(sql.NOTIFY, (sorted({job.queue for job in jobs}),))
        return ids

    def enqueue_payloads(self, template: NewJob, payloads: Sequence[str], now: float) -> list[int]:
        params = payloads_params(template, payloads, self._db.now(now))
        rows = self._db.run(sql.ENQUEUE_PAYLOADS, params)
        ids, _notified = rows[0]
        return list(ids)


def payloads_params(template: NewJob, payloads: Sequence[str], now: float | None) -> dict[str, Any]:
    """The parameters of :data:`~jobq.storage.postgres.sql.ENQUEUE_PAYLOADS`."""
    return {
        "queue": template.queue,
        "name": template.name,
        "priority": template.priority,
        "max_attempts": template.max_attempts,
        "run_at": template.run_at,
        "expires_at": template.expires_at,
        "payloads": list(payloads),
        "now": now,
    }


def insert_jobs(
    conn: psycopg.Connection[Any], jobs: Sequence[NewJob], now: float | None
) -> list[int]:
    """Insert ``jobs`` in the caller's transaction; their ids in order (a live job's
    id where one holds the unique key)."""
    ids: list[int] = []
    run: list[NewJob] = []  # consecutive jobs without a unique key
    for job in jobs:
        if job.unique_key is None:
            run.append(job)
            continue
        if run:
            ids.extend(_insert_run(conn, run, now))
            run = []
        ids.append(insert_keyed(conn, job, now).job.id)
    if run:
        ids.extend(_insert_run(conn, run, now))
    return ids


def insert_keyed(conn: psycopg.Connection[Any], job: NewJob, now: float | None) -> Enqueued:
    """``job`` (which has a unique key) stored in the caller's transaction, or the job
    that its policy returns instead."""
    params = _enqueue_params(job, now)
    if job.on_duplicate == "replace":
        return replace(conn, job, params)
    if job.throttle is not None and (recent := throttled(conn, job, params)) is not None:
        return recent
    found = conn.execute(sql.LIVE_BY_KEY, (job.name, job.unique_key)).fetchone()
    if found is not None:
        return Enqueued(row_to_job(job_row(found)), False)
    inserted = conn.execute(sql.ENQUEUE, params).fetchone()
    if inserted is not None:
        return Enqueued(_new_job(job, Inserted._make(inserted)), True)
    # Another transaction took the key meanwhile.
    found = conn.execute(sql.LIVE_BY_KEY, (job.name, job.unique_key)).fetchone()
    if found is None:
        raise StorageError(f"unique_key {job.unique_key!r} kept changing hands")
    return Enqueued(row_to_job(job_row(found)), False)


def _insert_run(conn: psycopg.Connection[Any], jobs: list[NewJob], now: float | None) -> list[int]:
    row = conn.execute(
        sql.ENQUEUE_ARRAYS,
        {
            "queues": [j.queue for j in jobs],
            "names": [j.name for j in jobs],
            "payloads": [j.payload for j in jobs],
            "priorities": [j.priority for j in jobs],
            "max_attempts": [j.max_attempts for j in jobs],
            "run_ats": [j.run_at for j in jobs],
            "expires_ats": [j.expires_at for j in jobs],
            "limit_keys": [j.limit_key for j in jobs],
            "now": now,
        },
    ).fetchone()
    assert row is not None
    (ids,) = row
    return list(ids)
