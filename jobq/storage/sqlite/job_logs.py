"""Job log lines in SQLite: the :class:`~jobq.storage.job_logs.JobLogStore`
part of :class:`~jobq.storage.sqlite.SQLiteStorage`; its arguments were
checked by :class:`~jobq.storage.job_logs.CheckedJobLogs`.

Rule: runs SQL only; imports this backend's database and the storage contract.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..job_logs import JobLogLine, NewLogLine
from .database import Database

_LAST = (
    "SELECT (SELECT 1 FROM jobs WHERE id = ?1), "
    "(SELECT max(number) FROM job_logs WHERE job_id = ?1)"
)
_INSERT = (
    "INSERT INTO job_logs (job_id, number, attempt, logged_at, message) VALUES (?, ?, ?, ?, ?)"
)
_TRIM = "DELETE FROM job_logs WHERE job_id = ? AND number <= ?"
_LINES = "SELECT number, attempt, logged_at, message FROM job_logs WHERE job_id = ? ORDER BY number"


class SQLiteJobLogs:
    """Appends and reads the log lines of the jobs of one SQLite file."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def append(self, job_id: int, lines: Sequence[NewLogLine], skipped: int, keep: int) -> int:
        # One short write transaction: a probe of the job, one insert per line and
        # a trim that finds nothing to delete until the job holds `keep` lines.
        with self._db.write() as conn:
            exists, last = conn.query(_LAST, (job_id,))[0]
            if not exists:
                return 0
            first = (last or 0) + skipped + 1
            rows = [(job_id, first + i, *line) for i, line in enumerate(lines)]
            if len(rows) == 1:
                conn.run(_INSERT, rows[0])
            else:
                conn.run_many(_INSERT, rows)
            newest = first + len(rows) - 1
            if newest > keep:
                conn.run(_TRIM, (job_id, newest - keep))
        return len(rows)

    def lines(self, job_id: int) -> list[JobLogLine]:
        return [
            JobLogLine(int(number), int(attempt), float(logged_at), str(message))
            for number, attempt, logged_at, message in self._db.query(_LINES, (job_id,))
        ]
