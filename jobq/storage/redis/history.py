"""A job's attempts and the queues' throughput on Redis: a hash per attempt that
ended without completing (``attempt:<id>:<n>``, written by the script that ended
it), and per-minute counters of jobs that ended completed or failed (``tp`` for
every queue, ``tp:<queue>`` for one; fields ``c<minute>`` and ``f<minute>``).

The :class:`~jobq.storage.history.HistoryStore` part of
:class:`~jobq.storage.redis.RedisStorage`; its arguments were checked by
:class:`~jobq.storage.history.CheckedHistory`.

Rule: reads only; imports this backend's server and the storage contract.
"""

from __future__ import annotations

from collections import Counter

from ..history import AttemptRecord, attempt_record
from .server import Server


class RedisHistory:
    """Reads the attempt history and throughput counters of one Redis database."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._p = server.prefix

    def attempts(self, job_id: int) -> list[AttemptRecord]:
        (job,) = self._server.hashes([f"{self._p}job:{job_id}"])
        rows = int(job.get("attempt_rows", 0))
        found = self._server.hashes([f"{self._p}attempt:{job_id}:{n}" for n in range(1, rows + 1)])
        return [
            attempt_record(
                (
                    job_id,
                    h["attempt"],
                    h.get("lease_owner"),
                    h.get("started_at"),
                    h["ended_at"],
                    h["outcome"],
                    h.get("error_type"),
                    h.get("error_message"),
                    h.get("error_traceback"),
                )
            )
            for h in found
            if h
        ]

    def counts(
        self, first: int, end: int, bucket: int, queue: str | None
    ) -> list[tuple[int, int, int]]:
        key = f"{self._p}tp" if queue is None else f"{self._p}tp:{queue}"
        (counters,) = self._server.hashes([key])
        completed: Counter[int] = Counter()
        failed: Counter[int] = Counter()
        for field, count in counters.items():
            minute = int(field[1:])
            if first <= minute < end:
                start = minute - (minute - first) % bucket
                (completed if field[0] == "c" else failed)[start] += int(count)
        return [(start, completed[start], failed[start]) for start in sorted(completed | failed)]
