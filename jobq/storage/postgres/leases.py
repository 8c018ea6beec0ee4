"""A job's life under a lease in PostgreSQL: claim (with task limits), renew,
progress, complete, fail, release, finish as cancelled, rescue.

The :class:`~jobq.storage.parts.Leases` part of
:class:`~jobq.storage.postgres.PostgresStorage`, the workers' hot path; its
arguments were checked by :class:`~jobq.storage.checked.CheckedStorage`.

Rule: runs SQL only; imports this backend's connections, SQL text and count
folding, the shared rows and limits, and the storage contract.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple

import psycopg

from .._limits import Allowance, Window, rate_windows
from .._rows import STATUS, JobRow, job_rows, row_to_job
from ..base import Completion, Job, JobError, JobStatus, RenewResult, RescueResult, TaskLimit
from . import history, sql
from .admin import fold_counts
from .connection import Database


class Candidate(NamedTuple):
    """A runnable job as :data:`~jobq.storage.postgres.sql.CANDIDATES` returns it."""

    id: int
    queue: str
    name: str
    limit_key: str | None


CLAIM_ROUNDS = 4
"""Most candidate queries of one limited claim (see PostgresLeases._claim_limited)."""


def _claim_order(job: Job) -> tuple[int, float, int]:
    """Highest priority first, then oldest run_at, then id."""
    return -job.priority, job.run_at, job.id


class PostgresLeases:
    """Leases on the jobs of one PostgreSQL database."""

    def __init__(self, db: Database) -> None:
        self._db = db

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
        params = {
            "queues": list(queues),
            "now": self._db.now(now),
            "limit": limit,
            "owner": owner,
            "lease": float(lease_seconds),
        }
        if limits:
            rows = self._claim_limited(params, limits, limited_at_most)
        else:
            rows = job_rows(self._db.run(sql.CLAIM, params))
        jobs = [row_to_job(row) for row in rows]
        jobs.sort(key=_claim_order)  # RETURNING has no order
        return jobs

    def _claim_limited(
        self, params: dict[str, Any], limits: Mapping[str, TaskLimit], at_most: int | None
    ) -> list[JobRow]:
        windows = rate_windows(limits)
        counted = sorted(name for name, limit in limits.items() if limit.concurrency)
        with self._db.conn() as conn, conn.transaction():
            # Claimers of limited tasks take turns (in a fixed order: no deadlocks).
            for key in sorted(set(counted) | {f"rate:{k}" for k in windows}):
                conn.execute(sql.LIMIT_LOCK, (key,))
            running = {
                (name, key): count
                for name, key, count in conn.execute(sql.RUNNING_OF, (counted,)).fetchall()
            }
            started: dict[tuple[str, str | None], int] = {}
            newest = self._caller_time(conn, params, windows)
            for key, window in windows.items():
                args = {"key": key, "per": window.per, "now": params["now"]}
                newest_start = newest.get(key)
                if params["now"] is None:
                    conn.execute(sql.FORGET_STARTS, args)
                elif newest_start is not None:
                    # Not a window before `now`: see _caller_time.
                    before = newest_start - window.per
                    conn.execute(sql.FORGET_STARTS_BEFORE, {"key": key, "before": before})
                if window.per_key:
                    for limit_key, count in conn.execute(sql.STARTS_BY_KEY, args).fetchall():
                        started[key, limit_key] = count
                else:
                    started[key, None] = conn.execute(sql.COUNT_STARTS, args).fetchall()[0][0]
            allowance = Allowance(limits, running, started, at_most)
            claimed: list[JobRow] = []
            # A round whose candidates were of keys that filled up meanwhile is
            # followed by another without those keys (the claimed are processing now).
            for _ in range(CLAIM_ROUNDS):
                chosen = self._fitting(conn, params, params["limit"] - len(claimed), allowance)
                if chosen:
                    rows = conn.execute(sql.CLAIM_IDS, {**params, "ids": [c.id for c in chosen]})
                    claimed += job_rows(rows.fetchall())
                if len(claimed) == params["limit"] or not allowance.skipped:
                    break
                allowance.skipped = False
            if allowance.rate_starts:
                starts = {
                    "keys": [key for key, _ in allowance.rate_starts],
                    "limit_keys": [limit_key for _, limit_key in allowance.rate_starts],
                    "now": params["now"],
                }
                conn.execute(sql.RECORD_STARTS, starts)
        return claimed

    @staticmethod
    def _caller_time(
        conn: psycopg.Connection[Any], params: dict[str, Any], windows: Mapping[str, Window]
    ) -> dict[str, float | None]:
        """With the caller's clock, move ``params["now"]`` on to the newest start
        recorded in the claim's rate windows if that is later; the newest start of
        each window. The caller read ``now`` before it got the locks, maybe long
        before, so starts already recorded may be later: recorded in order, and
        windows counted up to the latest of them (and cleared only up to a window
        before it, as a staler claim coming next may count more), the starts of all
        processes keep to the rate. The server's clock reads in order already."""
        if params["now"] is None:
            return {}
        newest: dict[str, float | None] = {
            key: conn.execute(sql.NEWEST_START, {"key": key}).fetchall()[0][0] for key in windows
        }
        params["now"] = max([params["now"], *(t for t in newest.values() if t is not None)])
        return newest

    def _fitting(
        self,
        conn: psycopg.Connection[Any],
        params: dict[str, Any],
        limit: int,
        allowance: Allowance,
    ) -> list[Candidate]:
        """The best runnable jobs that ``allowance`` lets this claim take (locked)."""
        groups = allowance.blocked_groups()
        candidates = conn.execute(
            sql.CANDIDATES,
            {
                **params,
                "limit": limit,
                "blocked": allowance.blocked(),
                "group_names": [name for name, _ in groups],
                "group_keys": [key for _, key in groups],
            },
        ).fetchall()
        return allowance.take(map(Candidate._make, candidates), limit)

    def has_runnable(self, queues: Sequence[str], now: float) -> bool:
        params = {"queues": list(queues), "now": self._db.now(now)}
        return bool(self._db.run(sql.HAS_RUNNABLE, params)[0][0])

    def renew(
        self, leases: Collection[tuple[int, str]], now: float, lease_seconds: float
    ) -> RenewResult:
        rows = self._db.run(
            sql.RENEW,
            {
                "ids": [job_id for job_id, _ in leases],
                "tokens": [token for _, token in leases],
                "now": self._db.now(now),
                "lease": float(lease_seconds),
            },
        )
        renewed = frozenset(job_id for job_id, _ in rows)
        cancel = frozenset(job_id for job_id, cancel_requested in rows if cancel_requested)
        lost = frozenset(job_id for job_id, _ in leases) - renewed
        return RenewResult(renewed, lost, cancel)

    def set_progress(self, job_id: int, lease_token: str, progress: str, now: float) -> bool:
        return (
            self._db.rowcount(
                sql.PROGRESS,
                {
                    "progress": progress,
                    "now": self._db.now(now),
                    "id": job_id,
                    "token": lease_token,
                },
            )
            == 1
        )

    def complete(self, job_id: int, lease_token: str, now: float, result: str | None) -> bool:
        rows = self._db.run(
            history.COMPLETE,
            {"result": result, "now": self._db.now(now), "id": job_id, "token": lease_token},
        )
        return bool(rows[0][0])

    def complete_many(self, completions: Sequence[Completion], now: float) -> list[bool]:
        rows = self._db.run(
            history.COMPLETE_MANY,
            {
                "ids": [c.job_id for c in completions],
                "tokens": [c.lease_token for c in completions],
                "results": [c.result for c in completions],
                "now": self._db.now(now),
            },
        )
        done = {job_id for (job_id,) in rows}
        outcome = []
        for completion in completions:
            outcome.append(completion.job_id in done)
            done.discard(completion.job_id)  # a repeated entry did not complete it again
        return outcome

    def fail(
        self, job_id: int, lease_token: str, error: JobError, now: float, retry_at: float | None
    ) -> JobStatus | None:
        rows = self._db.run(
            history.FAIL,
            {
                "retry_at": retry_at,
                "now": self._db.now(now),
                "type": error.type,
                "message": error.message,
                "traceback": error.traceback,
                "id": job_id,
                "token": lease_token,
            },
        )
        return STATUS[rows[0][0]] if rows else None

    def release(
        self, job_id: int, lease_token: str, now: float, run_at: float | None
    ) -> JobStatus | None:
        rows = self._db.run(
            sql.RELEASE,
            {"run_at": run_at, "now": self._db.now(now), "id": job_id, "token": lease_token},
        )
        return STATUS[rows[0][0]] if rows else None

    def finish_cancelled(self, job_id: int, lease_token: str, now: float) -> bool:
        params = {"now": self._db.now(now), "id": job_id, "token": lease_token}
        return bool(self._db.run(history.FINISH_CANCELLED, params)[0][0])

    def expire_jobs(self, now: float, limit: int) -> list[int]:
        rows = self._db.run(sql.EXPIRE, {"now": self._db.now(now), "limit": limit})
        return sorted(job_id for (job_id,) in rows)

    def rescue_expired(self, now: float, limit: int) -> RescueResult:
        rows = self._db.run(history.RESCUE, {"now": self._db.now(now), "limit": limit})
        fold_counts(self._db)  # the maintenance every worker pool runs often
        outcome: dict[str, list[int]] = {"pending": [], "failed": [], "cancelled": []}
        for job_id, status in sorted(rows):
            outcome[status].append(job_id)
        return RescueResult(
            tuple(outcome["pending"]), tuple(outcome["failed"]), tuple(outcome["cancelled"])
        )
