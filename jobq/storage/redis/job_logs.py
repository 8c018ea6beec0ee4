"""Job log lines in Redis: a list per job (``log:<id>``), each element the line's
number, attempt, time and text; the job's hash counts the numbers given out.

The :class:`~jobq.storage.job_logs.JobLogStore` part of
:class:`~jobq.storage.redis.RedisStorage`; its arguments were checked by
:class:`~jobq.storage.job_logs.CheckedJobLogs`. Purge and delete drop a job's lines
with it.

Rule: runs scripts and reads only; imports this backend's server and the storage
contract.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..job_logs import JobLogLine, NewLogLine
from .server import Arg, Server, text


class RedisJobLogs:
    """Appends and reads the log lines of the jobs of one Redis database."""

    def __init__(self, server: Server) -> None:
        self._server = server

    def append(self, job_id: int, lines: Sequence[NewLogLine], skipped: int, keep: int) -> int:
        args: list[Arg] = [job_id, skipped, keep]
        for attempt, logged_at, message in lines:
            args += [attempt, text(logged_at), message]
        return int(self._server.run("append_log", None, *args))

    def lines(self, job_id: int) -> list[JobLogLine]:
        kept = []
        for item in self._server.items(f"{self._server.prefix}log:{job_id}"):
            number, attempt, logged_at, message = item.split("\n", 3)
            kept.append(JobLogLine(int(number), int(attempt), float(logged_at), message))
        return kept
