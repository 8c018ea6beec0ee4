"""A job's life under a lease in Redis: claim, renew, progress, complete, fail,
release, finish as cancelled, rescue; each one script run, so each is atomic.

The :class:`~jobq.storage.parts.Leases` part of
:class:`~jobq.storage.redis.RedisStorage`, the workers' hot path; its arguments
were checked by :class:`~jobq.storage.checked.CheckedStorage`.

Rule: runs scripts only; imports this backend's server and the storage contract.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection, Mapping, Sequence

from .._limits import rate_key
from ..base import Completion, Job, JobError, JobStatus, RenewResult, RescueResult, TaskLimit
from .server import Arg, Server, text, to_job

_STATUS = {status.value: status for status in JobStatus}


class RedisLeases:
    """Leases on the jobs of one Redis database."""

    def __init__(self, server: Server) -> None:
        self._server = server

    def claim(
        self,
        queues: Sequence[str],
        owner: str,
        now: float,
        lease_seconds: float,
        limit: int,
        limits: Mapping[str, TaskLimit] | None,
        limited_at_most: int | None,
    ) -> list[Job]:
        described: list[Arg] = []
        for name, task in (limits or {}).items():
            described += [
                name,
                "" if task.concurrency is None else task.concurrency,
                "" if task.rate is None else task.rate,
                text(task.per),
                rate_key(name, task),
                "1" if task.per_key else "0",
            ]
        tokens = [secrets.token_urlsafe(16) for _ in range(limit)]
        rows = self._server.run(
            "claim",
            now,
            text(lease_seconds),
            owner,
            limit,
            "" if limited_at_most is None else limited_at_most,
            len(queues),
            len(limits or {}),
            *queues,
            *described,
            *tokens,
        )
        return [to_job(json.loads(row)) for row in rows]

    def has_runnable(self, queues: Sequence[str], now: float) -> bool:
        return bool(self._server.run("has_runnable", now, *queues))

    def renew(
        self, leases: Collection[tuple[int, str]], now: float, lease_seconds: float
    ) -> RenewResult:
        args: list[Arg] = [text(lease_seconds)]
        for job_id, token in leases:
            args += [job_id, token]
        rows = self._server.run("renew", now, *args)
        renewed = frozenset(int(job_id) for job_id, _ in rows)
        cancel = frozenset(int(job_id) for job_id, flag in rows if flag == "1")
        lost = frozenset(job_id for job_id, _ in leases) - renewed
        return RenewResult(renewed, lost, cancel)

    def set_progress(self, job_id: int, lease_token: str, progress: str, now: float) -> bool:
        return bool(self._server.run("progress", now, job_id, lease_token, progress))

    def complete(self, job_id: int, lease_token: str, now: float, result: str | None) -> bool:
        return self.complete_many([Completion(job_id, lease_token, result)], now)[0]

    def complete_many(self, completions: Sequence[Completion], now: float) -> list[bool]:
        args: list[Arg] = []
        for job_id, token, result in completions:
            args += [job_id, token, "0" if result is None else "1", result or ""]
        return [bool(done) for done in self._server.run("complete", now, *args)]

    def fail(
        self, job_id: int, lease_token: str, error: JobError, now: float, retry_at: float | None
    ) -> JobStatus | None:
        status = self._server.run(
            "fail",
            now,
            job_id,
            lease_token,
            text(retry_at),
            error.type,
            error.message,
            error.traceback or "",
            "0" if error.traceback is None else "1",
        )
        return None if status is None else _STATUS[status]

    def release(
        self, job_id: int, lease_token: str, now: float, run_at: float | None
    ) -> JobStatus | None:
        status = self._server.run("release", now, job_id, lease_token, text(run_at))
        return None if status is None else _STATUS[status]

    def finish_cancelled(self, job_id: int, lease_token: str, now: float) -> bool:
        return bool(self._server.run("finish_cancelled", now, job_id, lease_token))

    def rescue_expired(self, now: float, limit: int) -> RescueResult:
        outcome: dict[str, list[int]] = {"pending": [], "failed": [], "cancelled": []}
        for job_id, status in sorted(
            (int(i), s) for i, s in self._server.run("rescue", now, limit)
        ):
            outcome[status].append(job_id)
        return RescueResult(
            tuple(outcome["pending"]), tuple(outcome["failed"]), tuple(outcome["cancelled"])
        )

    def expire_jobs(self, now: float, limit: int) -> list[int]:
        return sorted(int(job_id) for job_id in self._server.run("expire", now, limit))
