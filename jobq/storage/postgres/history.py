"""Job history and throughput in PostgreSQL: the
:class:`~jobq.storage.history.HistoryStore` part of
:class:`~jobq.storage.postgres.PostgresStorage` (its arguments were checked by
:class:`~jobq.storage.history.CheckedHistory`), and the statements that
:mod:`.leases` runs to end an attempt and write its history in one statement.

Throughput counters are rows appended by each ending statement (one per queue
and minute it touched), never updated in place: no row that every worker would
lock until its commit. :func:`fold_throughput`, run with the folding of the
job counts, sums each recent minute into one row and deletes the counters
older than two days before the newest one.

Rule: runs SQL only; imports this backend's connections and SQL text and the
storage contract.
"""

from __future__ import annotations

from typing import Any

import psycopg

from ..history import KEEP_COUNTERS_SECONDS, AttemptRecord, attempt_record
from . import sql
from .connection import Database

_ENDED = (
    "id",
    "status",
    "queue",
    "attempts",
    "lease_owner",
    "started_at",
    "updated_at",
    "error_type",
    "error_message",
    "error_traceback",
)
"""What an ending UPDATE returns for the history and counters (updated_at is its now)."""


def _record(outcome: str) -> str:
    return (
        "h AS (INSERT INTO jobq_job_attempts (job_id, attempt, lease_owner, started_at, "
        "ended_at, outcome, error_type, error_message, error_traceback) SELECT id, attempts, "
        f"lease_owner, started_at, updated_at, '{outcome}', error_type, error_message, "
        "error_traceback FROM u)"
    )


def _count(column: str, where: str = "") -> str:
    completed, failed = ("count(*)", "0") if column == "completed" else ("0", "count(*)")
    return (
        "t AS (INSERT INTO jobq_throughput (minute, queue, completed, failed) "
        f"SELECT (floor(updated_at / 60) * 60)::bigint, queue, {completed}, {failed} FROM u "
        f"{where} GROUP BY 1, 2)"
    )


def _ending(update: str, returning: str, alias: str = "") -> str:
    """``update`` (an UPDATE of :mod:`.sql`, or ``WITH c AS (...) UPDATE``) with its
    ``returning`` clause replaced by the columns :data:`_ENDED` (of the table
    named ``alias``), as the CTE ``u``."""
    assert update.endswith(returning), update
    columns = ", ".join(f"{alias}{column}" for column in _ENDED)
    body = update[: len(update) - len(returning)].rstrip() + f" RETURNING {columns})"
    if body.startswith("WITH "):
        head, found, rest = body.partition(") UPDATE ")
        assert found, body
        return f"{head}), u AS (UPDATE {rest}"
    return f"WITH u AS ({body}"


_FAILED = "WHERE status = 'failed'"
COMPLETE = (
    f"{_ending(sql.COMPLETE + ' RETURNING 1', 'RETURNING 1')}, {_count('completed')} "
    "SELECT count(*) FROM u"
)
COMPLETE_MANY = (
    f"{_ending(sql.COMPLETE_MANY, 'RETURNING j.id', 'j.')}, {_count('completed')} SELECT id FROM u"
)
FAIL = (
    f"{_ending(sql.FAIL, 'RETURNING status')}, {_record('failed')}, "
    f"{_count('failed', _FAILED)} SELECT status FROM u"
)
FINISH_CANCELLED = (
    f"{_ending(sql.FINISH_CANCELLED + ' RETURNING 1', 'RETURNING 1')}, {_record('cancelled')} "
    "SELECT count(*) FROM u"
)


def rescue_statement(update: str, outcome: str) -> str:
    """``update``, an UPDATE releasing held jobs ``RETURNING j.id, j.status``, that also
    records their attempts as ended with ``outcome`` and counts those that failed."""
    return (
        f"{_ending(update, 'RETURNING j.id, j.status', 'j.')}, {_record(outcome)}, "
        f"{_count('failed', _FAILED)} SELECT id, status FROM u"
    )


RESCUE = rescue_statement(sql.RESCUE, "lease_expired")

_ATTEMPTS = (
    "SELECT job_id, attempt, lease_owner, started_at, ended_at, outcome, error_type, "
    "error_message, error_traceback FROM jobq_job_attempts WHERE job_id = %s ORDER BY id"
)
_COUNTS = (
    "SELECT minute / %(bucket)s * %(bucket)s AS start, sum(completed), sum(failed) "
    "FROM jobq_throughput WHERE minute >= %(first)s AND minute < %(end)s "
    "AND (%(queue)s::text IS NULL OR queue = %(queue)s::text) GROUP BY start"
)
_FORGET = (
    "DELETE FROM jobq_throughput WHERE minute < "
    f"(SELECT max(minute) FROM jobq_throughput) - {KEEP_COUNTERS_SECONDS:d}"
)
_FOLD = (
    "WITH recent AS (SELECT minute, queue FROM jobq_throughput "
    "WHERE minute >= (SELECT max(minute) FROM jobq_throughput) - 3600 "
    "GROUP BY minute, queue HAVING count(*) > 1), "
    "folded AS (DELETE FROM jobq_throughput t USING recent r "
    "WHERE t.minute = r.minute AND t.queue = r.queue RETURNING t.*) "
    "INSERT INTO jobq_throughput SELECT minute, queue, sum(completed), sum(failed) "
    "FROM folded GROUP BY minute, queue"
)
"""Sum the rows of each minute of the newest hour that has several into one.
Rows other transactions append meanwhile are not in its snapshot and stay: no
end is lost or counted twice."""


def fold_throughput(conn: psycopg.Connection[Any]) -> None:
    """Fold the recent counter rows and forget the old ones, in ``conn``'s
    transaction (the one folding the job counts, under its lock)."""
    conn.execute(_FORGET)
    conn.execute(_FOLD)


class PostgresHistory:
    """Reads the attempt history and throughput counters of one PostgreSQL database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def attempts(self, job_id: int) -> list[AttemptRecord]:
        return [attempt_record(row) for row in self._db.run(_ATTEMPTS, (job_id,))]

    def counts(
        self, first: int, end: int, bucket: int, queue: str | None
    ) -> list[tuple[int, int, int]]:
        params = {"first": first, "end": end, "bucket": bucket, "queue": queue}
        return [(int(s), int(c), int(f)) for s, c, f in self._db.run(_COUNTS, params)]
