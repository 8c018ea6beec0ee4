"""Job log lines in PostgreSQL: the :class:`~jobq.storage.job_logs.JobLogStore`
part of :class:`~jobq.storage.postgres.PostgresStorage`; its arguments were
checked by :class:`~jobq.storage.job_logs.CheckedJobLogs`.

Rule: runs SQL only; imports this backend's connections and the storage contract.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..job_logs import JobLogLine, NewLogLine
from .connection import Database

# Appends to one job take turns on its row (a lock that renewals and completions
# of the job wait out for one short transaction, and that purge waits for), so
# each reads the last number after the one before it committed.
_LOCK_JOB = "SELECT 1 FROM jobq_jobs WHERE id = %s FOR NO KEY UPDATE"
_APPEND = (
    "WITH last AS (SELECT coalesce(max(number), 0) AS n FROM jobq_job_logs "
    "WHERE job_id = %(id)s), "
    "ins AS (INSERT INTO jobq_job_logs (job_id, number, attempt, logged_at, message) "
    "SELECT %(id)s, last.n + %(skipped)s + l.ord, l.attempt, l.logged_at, l.message "
    "FROM last, unnest(%(attempts)s::int[], %(times)s::float8[], %(messages)s::text[]) "
    "WITH ORDINALITY AS l(attempt, logged_at, message, ord) RETURNING number) "
    "DELETE FROM jobq_job_logs WHERE job_id = %(id)s "
    "AND number <= (SELECT max(number) FROM ins) - %(keep)s"
)
"""Insert the lines numbered on, and drop the lines older than the newest ``keep``
(the DELETE sees the rows from before this statement, which are the ones to trim)."""
_LINES = (
    "SELECT number, attempt, logged_at, message FROM jobq_job_logs "
    "WHERE job_id = %s ORDER BY number"
)


class PostgresJobLogs:
    """Appends and reads the log lines of the jobs of one PostgreSQL database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def append(self, job_id: int, lines: Sequence[NewLogLine], skipped: int, keep: int) -> int:
        params = {
            "id": job_id,
            "skipped": skipped,
            "keep": keep,
            "attempts": [line.attempt for line in lines],
            "times": [line.logged_at for line in lines],
            "messages": [line.message for line in lines],
        }
        with self._db.conn() as conn, conn.transaction():
            if conn.execute(_LOCK_JOB, (job_id,)).fetchone() is None:
                return 0
            conn.execute(_APPEND, params)
        return len(lines)

    def lines(self, job_id: int) -> list[JobLogLine]:
        return [
            JobLogLine(int(number), int(attempt), float(logged_at), str(message))
            for number, attempt, logged_at, message in self._db.run(_LINES, (job_id,))
        ]
