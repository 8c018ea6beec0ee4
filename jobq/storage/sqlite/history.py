"""Job history and throughput in SQLite: the
:class:`~jobq.storage.history.HistoryStore` part of
:class:`~jobq.storage.sqlite.SQLiteStorage` (its arguments were checked by
:class:`~jobq.storage.history.CheckedHistory`), and the writes that
:mod:`.leases` runs in the transaction that ends an attempt.

Rule: runs SQL only; imports this backend's database and the storage contract.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping

from ..history import AttemptRecord, attempt_record, minute_of
from .database import Database
from .driver import Connection

_RECORD = (
    "INSERT INTO job_attempts (job_id, attempt, lease_owner, started_at, ended_at, outcome, "
    "error_type, error_message, error_traceback) SELECT id, attempts, lease_owner, started_at, "
    "?2, ?3, error_type, error_message, error_traceback FROM jobs WHERE id = ?1"
)
"""The attempt a statement just ended, from its row (the end keeps its owner,
start and attempt number; fail and rescue have just set its error)."""
_RECORD_CANCELLED = (
    "INSERT INTO job_attempts (job_id, attempt, lease_owner, started_at, ended_at, outcome) "
    "SELECT id, attempts, lease_owner, started_at, ?2, 'cancelled' FROM jobs WHERE id = ?1"
)
_COUNT = (
    "INSERT INTO job_throughput (minute, queue, completed, failed) "
    "SELECT ?1, queue, {completed}, {failed} FROM jobs WHERE id {which} GROUP BY queue "
    "ON CONFLICT (minute, queue) DO UPDATE SET completed = completed + excluded.completed, "
    "failed = failed + excluded.failed"
)
_ADD = (
    "INSERT INTO job_throughput (minute, queue, completed, failed) VALUES (?1, ?2, ?3, ?4) "
    "ON CONFLICT (minute, queue) DO UPDATE SET completed = completed + excluded.completed, "
    "failed = failed + excluded.failed"
)
COUNT_COMPLETED = _COUNT.format(completed="count(*)", failed="0", which="= ?2")
COUNT_FAILED = _COUNT.format(completed="0", failed="count(*)", which="= ?2")
_IN_JSON = "IN (SELECT value FROM json_each(?2))"
COUNT_COMPLETED_IN = _COUNT.format(completed="count(*)", failed="0", which=_IN_JSON)
COUNT_FAILED_IN = _COUNT.format(completed="0", failed="count(*)", which=_IN_JSON)
"""One upsert per queue for the jobs whose ids ?2 lists (a JSON array)."""

_ATTEMPTS = (
    "SELECT job_id, attempt, lease_owner, started_at, ended_at, outcome, error_type, "
    "error_message, error_traceback FROM job_attempts WHERE job_id = ? ORDER BY id"
)
_COUNTS = (
    "SELECT minute / ?3 * ?3 AS start, sum(completed), sum(failed) FROM job_throughput "
    "WHERE minute >= ?1 AND minute < ?2 {queue} GROUP BY start"
)
_COUNTS_ALL = _COUNTS.format(queue="")
_COUNTS_ONE = _COUNTS.format(queue="AND queue = ?4")


def record_attempt(conn: Connection, job_id: int, now: float, outcome: str) -> None:
    """Keep the attempt of ``job_id`` that just ended with ``outcome``."""
    if outcome == "cancelled":
        conn.run(_RECORD_CANCELLED, (job_id, now))
    else:
        conn.run(_RECORD, (job_id, now, outcome))


def count_queues(conn: Connection, queues: Mapping[str, int], now: float, *, failed: bool) -> None:
    """Count ``queues[name]`` jobs of each queue (that just ended completed, or
    failed) in the minute of ``now``: one upsert per queue, counted by the caller."""
    minute = minute_of(now)
    for queue, count in queues.items():
        conn.run(_ADD, (minute, queue, 0, count) if failed else (minute, queue, count, 0))


def count_ended(conn: Connection, job_ids: Collection[int], now: float, *, failed: bool) -> None:
    """Count ``job_ids`` (that just ended completed, or failed) in the minute of
    ``now``: one upsert per queue."""
    if not job_ids:
        return
    if len(job_ids) == 1:
        (job_id,) = job_ids
        conn.run(COUNT_FAILED if failed else COUNT_COMPLETED, (minute_of(now), job_id))
        return
    ids = json.dumps(sorted(job_ids))
    conn.run(COUNT_FAILED_IN if failed else COUNT_COMPLETED_IN, (minute_of(now), ids))


class SQLiteHistory:
    """Reads the attempt history and throughput counters of one SQLite file."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def attempts(self, job_id: int) -> list[AttemptRecord]:
        return [attempt_record(row) for row in self._db.query(_ATTEMPTS, (job_id,))]

    def counts(
        self, first: int, end: int, bucket: int, queue: str | None
    ) -> list[tuple[int, int, int]]:
        if queue is None:
            rows = self._db.query(_COUNTS_ALL, (first, end, bucket))
        else:
            rows = self._db.query(_COUNTS_ONE, (first, end, bucket, queue))
        return [(int(start), int(done), int(failed)) for start, done, failed in rows]
