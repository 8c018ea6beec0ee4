"""A job's life under a lease in SQLite: claim (with task limits), renew,
progress, complete, fail, release, finish as cancelled, rescue.

The :class:`~jobq.storage.parts.Leases` part of
:class:`~jobq.storage.sqlite.SQLiteStorage`, the workers' hot path; its
arguments were checked by :class:`~jobq.storage.checked.CheckedStorage`.

Rule: runs SQL only; imports this backend's database and SQL text, the shared
rows and limits, and the storage contract.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from .._checks import new_tokens
from .._limits import Allowance, rate_windows
from .._rows import STATUS, JobRow, job_rows, row_to_job
from ..base import (
    Completion,
    Job,
    JobError,
    JobStatus,
    RenewResult,
    RescueResult,
    StorageError,
    TaskLimit,
)
from .database import Database
from .driver import Connection
from .history import count_ended, count_queues, record_attempt
from .sql import (
    ANY_EXPIRED,
    CANDIDATES,
    CANDIDATES_EXCEPT,
    CANDIDATES_EXCEPT_GROUPS,
    CLAIM_ID,
    COMPLETE,
    COMPLETE_CHUNK,
    EXPIRE,
    EXPIRED_IDS,
    FAIL,
    FINISH_CANCELLED,
    HAS_RUNNABLE,
    JOBS_IN,
    PROGRESS,
    RELEASE,
    RENEW,
    RESCUE,
    RUNNING_OF,
    TAKE_IDS,
    candidate_ids,
    claimed_job,
    complete_from,
    padded_size,
    take_in,
)

_COMPLETE_RETURNING = f"{COMPLETE} RETURNING queue"
NEWEST_START = "SELECT max(started_at) FROM rate_starts WHERE key = ?1"
FORGET_STARTS = "DELETE FROM rate_starts WHERE key = ?1 AND started_at <= ?2"
COUNT_STARTS = "SELECT count(*) FROM rate_starts WHERE key = ?1 AND started_at > ?2"
STARTS_BY_KEY = (
    "SELECT limit_key, count(*) FROM rate_starts WHERE key = ?1 AND started_at > ?2 "
    "GROUP BY limit_key"
)
CLAIM_ROUNDS = 4
"""Most candidate queries of one limited claim (see SQLiteLeases._claim_limited)."""


def _claim_order(row: JobRow | Job) -> tuple[int, float, int]:
    """Highest priority first, then oldest run_at, then id."""
    return -row.priority, row.run_at, row.id


def _completion_values(chunk: Sequence[Completion], now: float) -> list[Any]:
    """The parameters of :func:`complete_from` for ``chunk``, padded to its size."""
    values: list[Any] = [now]
    for job_id, token, result in chunk:
        values += (job_id, token, result)
    values += (0, "", None) * (padded_size(len(chunk)) - len(chunk))  # id 0 never exists
    return values


class SQLiteLeases:
    """Leases on the jobs of one SQLite file."""

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
        expires = now + lease_seconds
        if not limits and self._db.returning:
            return self._claim_returning(queues, owner, now, expires, limit)
        with self._db.write(durable=False) as conn:
            if limits:
                return self._claim_limited(
                    conn, queues, (owner, lease_seconds, now), limit, limits, limited_at_most
                )
            rows = self._candidates(conn, queues, now, limit)
            tokens = self._take(conn, rows, owner, expires, now)
        return [claimed_job(r, owner, t, expires, now) for r, t in zip(rows, tokens, strict=True)]

    def _take(
        self, conn: Connection, rows: list[JobRow], owner: str, expires: float, now: float
    ) -> list[str]:
        """Mark ``rows`` processing; their new lease tokens."""
        if not rows:
            return []
        if len(rows) > 1 and self._db.returning:
            return self._take_many(conn, rows, owner, expires, now)
        return self._take_each(conn, rows, owner, expires, now)

    def _claim_returning(
        self, queues: Sequence[str], owner: str, now: float, expires: float, limit: int
    ) -> list[Job]:
        """Claim without task limits where SQLite has RETURNING (and UPDATE ... FROM):
        the ids off the claim index alone, one UPDATE takes them, then their rows. The
        statements under the write lock return one row each: a driver hands the GIL
        back and forth for every row it steps through, and a worker thread holding it
        meanwhile would keep other processes' writers waiting."""
        with self._db.write(durable=False) as conn:
            ((ids,),) = conn.query(candidate_ids(len(queues)), (now, limit, *queues))
            count = len(json.loads(ids))
            if not count:
                return []
            taken = conn.run(TAKE_IDS, (owner, expires, now, ids))
            if taken != count:
                raise StorageError(f"claimed {taken} of {count} candidates; rolled back")
            rows = job_rows(conn.query(JOBS_IN, (ids,)))
        rows.sort(key=_claim_order)
        return list(map(row_to_job, rows))

    def _candidates(
        self, conn: Connection, queues: Sequence[str], now: float, limit: int
    ) -> list[JobRow]:
        """The best ``limit`` runnable rows of ``queues``, in claim order."""
        rows = job_rows(conn.query(CANDIDATES, (None, None, now, queues[0], limit)))
        if len(queues) > 1:
            # Each queue's best `limit`, read off its index in order; keep the best.
            for name in queues[1:]:
                rows += job_rows(conn.query(CANDIDATES, (None, None, now, name, limit)))
            rows.sort(key=_claim_order)
            del rows[limit:]
        return rows

    def _claim_limited(
        self,
        conn: Connection,
        queues: Sequence[str],
        lease: tuple[str, float, float],
        limit: int,
        limits: Mapping[str, TaskLimit],
        at_most: int | None,
    ) -> list[Job]:
        """Claim the best runnable jobs that the task limits allow; record the starts
        that count against a rate window. A round whose candidates were all of keys
        that filled up meanwhile is followed by another without those keys.
        ``lease``: (owner, lease seconds, now)."""
        owner, lease_seconds, now = lease
        allowance, now = self._allowance(conn, limits, now, at_most)
        expires = now + lease_seconds
        jobs: list[Job] = []
        for _ in range(CLAIM_ROUNDS):
            rows = self._fitting(conn, queues, now, limit - len(jobs), allowance)
            tokens = self._take(conn, rows, owner, expires, now)
            for row, token in zip(rows, tokens, strict=True):
                jobs.append(claimed_job(row, owner, token, expires, now))
            if len(jobs) == limit or not allowance.skipped:
                break
            allowance.skipped = False
        conn.run_many(
            "INSERT INTO rate_starts (key, limit_key, started_at) VALUES (?, ?, ?)",
            [(key, limit_key, now) for key, limit_key in allowance.rate_starts],
        )
        jobs.sort(key=_claim_order)
        return jobs

    def _fitting(
        self, conn: Connection, queues: Sequence[str], now: float, limit: int, allowance: Allowance
    ) -> list[JobRow]:
        """The best runnable rows that ``allowance`` lets this claim take, in claim order."""
        blocked = json.dumps(allowance.blocked())
        groups = allowance.blocked_groups()
        statement = CANDIDATES_EXCEPT_GROUPS if groups else CANDIDATES_EXCEPT
        extra = (json.dumps(groups),) if groups else ()
        rows: list[JobRow] = []
        for name in queues:
            params = (None, None, now, name, limit, blocked, *extra)
            rows += job_rows(conn.query(statement, params))
        rows.sort(key=_claim_order)
        return allowance.take(rows, limit)

    def _allowance(
        self, conn: Connection, limits: Mapping[str, TaskLimit], now: float, at_most: int | None
    ) -> tuple[Allowance, float]:
        """What the limited tasks may take, read under the write lock, and the time
        this claim happens at: ``now``, or the newest start recorded in one of its
        rate windows if that is later. The caller read ``now`` before it got
        the lock, maybe long before (another process held it), so starts already
        recorded may be later; recorded in order, and windows counted up to the
        latest of them, the starts of all processes keep to the rate."""
        windows = rate_windows(limits)
        newest = {key: conn.query(NEWEST_START, (key,))[0][0] for key in windows}
        now = max([now, *(t for t in newest.values() if t is not None)])
        counted = json.dumps(sorted(n for n, lim in limits.items() if lim.concurrency))
        running = {(name, key): count for name, key, count in conn.query(RUNNING_OF, (counted,))}
        started: dict[tuple[str, str | None], int] = {}
        for key, window in windows.items():
            if newest[key] is not None:
                # Starts a window before the newest: no claim counts them any more.
                # (Not a window before `now`: a claim whose `now` is staler than this
                # one's, coming next, may still count those.)
                conn.run(FORGET_STARTS, (key, newest[key] - window.per))
            since = now - window.per
            if window.per_key:
                for limit_key, count in conn.query(STARTS_BY_KEY, (key, since)):
                    started[key, limit_key] = count
            else:
                started[key, None] = conn.query(COUNT_STARTS, (key, since))[0][0]
        return Allowance(limits, running, started, at_most), now

    def _take_each(
        self, conn: Connection, rows: list[JobRow], owner: str, expires: float, now: float
    ) -> list[str]:
        """Mark candidate ``rows`` processing one UPDATE each; return their new tokens."""
        tokens = new_tokens(len(rows))
        params = [(owner, expires, now, r.id, t) for r, t in zip(rows, tokens, strict=True)]
        one = len(rows) == 1
        taken = conn.run(CLAIM_ID, params[0]) if one else conn.run_many(CLAIM_ID, params)
        if taken != len(rows):
            raise StorageError(f"claimed {taken} of {len(rows)} candidates; rolled back")
        return tokens

    def _take_many(
        self, conn: Connection, rows: list[JobRow], owner: str, expires: float, now: float
    ) -> list[str]:
        """Mark candidate ``rows`` processing in one UPDATE; return their new tokens."""
        ids = [row.id for row in rows]
        size = padded_size(len(ids))
        ids += [ids[-1]] * (size - len(ids))  # repeats change nothing
        found = conn.query(take_in(size), (owner, expires, now, *ids))
        tokens: dict[int, str] = dict(found)  # rows of (id, lease_token)
        if len(tokens) != len(rows):
            raise StorageError(f"claimed {len(tokens)} of {len(rows)} candidates; rolled back")
        return [tokens[row.id] for row in rows]

    def has_runnable(self, queues: Sequence[str], now: float) -> bool:
        return any(self._db.query(HAS_RUNNABLE, (name, now))[0][0] for name in queues)

    def renew(
        self, leases: Collection[tuple[int, str]], now: float, lease_seconds: float
    ) -> RenewResult:
        renewed: set[int] = set()
        cancel: set[int] = set()
        lost: set[int] = set()
        expires = now + lease_seconds
        with self._db.write() as conn:
            for job_id, token in leases:
                rows = self._db.modify(
                    conn, RENEW, (expires, now, job_id, token), "cancel_requested", job_id
                )
                if rows:
                    renewed.add(job_id)
                    (cancel_requested,) = rows[0]
                    if cancel_requested:
                        cancel.add(job_id)
                else:
                    lost.add(job_id)
        return RenewResult(frozenset(renewed), frozenset(lost - renewed), frozenset(cancel))

    def set_progress(self, job_id: int, lease_token: str, progress: str, now: float) -> bool:
        with self._db.write() as conn:
            return conn.run(PROGRESS, (progress, now, job_id, lease_token)) == 1

    def complete(self, job_id: int, lease_token: str, now: float, result: str | None) -> bool:
        params = (result, now, job_id, lease_token)
        with self._db.write() as conn:
            if self._db.returning:
                rows = conn.query(_COMPLETE_RETURNING, params)
                if not rows:
                    return False
                count_queues(conn, {rows[0][0]: 1}, now, failed=False)
            elif conn.run(COMPLETE, params) == 1:
                count_ended(conn, (job_id,), now, failed=False)
            else:
                return False
        return True

    def complete_many(self, completions: Sequence[Completion], now: float) -> list[bool]:
        with self._db.write() as conn:
            # The counters: one upsert per queue for the whole batch.
            if self._db.returning:
                done = self._complete_all(conn, completions, now)
            else:
                params = [(result, now, job_id, token) for job_id, token, result in completions]
                done = self._complete_executemany(conn, params)
                ended = {c.job_id for c, ok in zip(completions, done, strict=True) if ok}
                count_ended(conn, ended, now, failed=False)
        return done

    def _complete_executemany(self, conn: Connection, params: list[tuple[Any, ...]]) -> list[bool]:
        """complete_many without RETURNING: one executemany; if any lease was lost,
        undo it and go one by one to learn which (executemany only reports a total)."""
        conn.run("SAVEPOINT complete_many")
        if conn.run_many(COMPLETE, params) == len(params):
            conn.run("RELEASE complete_many")
            return [True] * len(params)
        conn.run("ROLLBACK TO complete_many")
        conn.run("RELEASE complete_many")
        return [conn.run(COMPLETE, p) == 1 for p in params]

    def _complete_all(
        self, conn: Connection, completions: Sequence[Completion], now: float
    ) -> list[bool]:
        """complete_many as one UPDATE ... FROM (VALUES ...) per chunk, counted by one
        upsert per queue; if any lease was lost, undo it and go again with RETURNING
        to learn which. (No row comes back in the usual case: see _claim_returning.)"""
        conn.run("SAVEPOINT complete_many")
        taken = 0
        for start in range(0, len(completions), COMPLETE_CHUNK):
            chunk = completions[start : start + COMPLETE_CHUNK]
            taken += conn.run(
                complete_from(padded_size(len(chunk))), _completion_values(chunk, now)
            )
        if taken == len(completions):
            conn.run("RELEASE complete_many")
            count_ended(conn, [c.job_id for c in completions], now, failed=False)
            return [True] * len(completions)
        conn.run("ROLLBACK TO complete_many")
        conn.run("RELEASE complete_many")
        queues: Counter[str] = Counter()
        done = self._complete_each(conn, completions, now, queues)
        count_queues(conn, queues, now, failed=False)
        return done

    def _complete_each(
        self, conn: Connection, completions: Sequence[Completion], now: float, queues: Counter[str]
    ) -> list[bool]:
        """complete_many as one UPDATE ... FROM (VALUES ...) RETURNING per chunk;
        counts the completed jobs of each queue into ``queues``."""
        done: set[int] = set()
        for start in range(0, len(completions), COMPLETE_CHUNK):
            chunk = completions[start : start + COMPLETE_CHUNK]
            returning = complete_from(padded_size(len(chunk))) + " RETURNING jobs.id, jobs.queue"
            for job_id, queue in conn.query(returning, _completion_values(chunk, now)):
                done.add(job_id)
                queues[queue] += 1
        outcome = []
        for job_id, _, _ in completions:
            outcome.append(job_id in done)
            done.discard(job_id)  # a repeated entry did not complete it again
        return outcome

    def fail(
        self, job_id: int, lease_token: str, error: JobError, now: float, retry_at: float | None
    ) -> JobStatus | None:
        params = (retry_at, now, error.type, error.message, error.traceback, job_id, lease_token)
        with self._db.write() as conn:
            rows = self._db.modify(conn, FAIL, params, "status", job_id)
            if rows:
                record_attempt(conn, job_id, now, "failed")
                if rows[0][0] == "failed":
                    count_ended(conn, (job_id,), now, failed=True)
        return STATUS[rows[0][0]] if rows else None

    def release(
        self, job_id: int, lease_token: str, now: float, run_at: float | None
    ) -> JobStatus | None:
        params = (now if run_at is None else run_at, now, job_id, lease_token)
        with self._db.write() as conn:
            rows = self._db.modify(conn, RELEASE, params, "status", job_id)
        return STATUS[rows[0][0]] if rows else None

    def finish_cancelled(self, job_id: int, lease_token: str, now: float) -> bool:
        with self._db.write() as conn:
            if conn.run(FINISH_CANCELLED, (now, job_id, lease_token)) != 1:
                return False
            record_attempt(conn, job_id, now, "cancelled")
        return True

    def expire_jobs(self, now: float, limit: int) -> list[int]:
        # A read first: most runs find nothing, and a read takes no write lock.
        if not self._db.query(ANY_EXPIRED, (now,))[0][0]:
            return []
        with self._db.write() as conn:
            ((ids,),) = conn.query(EXPIRED_IDS, (now, limit))
            if conn.run(EXPIRE, (now, ids)) != len(json.loads(ids)):
                raise StorageError("expired jobs changed under the write lock; rolled back")
        return sorted(json.loads(ids))

    def rescue_expired(self, now: float, limit: int) -> RescueResult:
        outcome: dict[str, list[int]] = {"pending": [], "failed": [], "cancelled": []}
        with self._db.write() as conn:
            expired = conn.query(
                "SELECT id FROM jobs INDEXED BY jobs_lease WHERE status = 'processing' "
                "AND lease_expires_at <= ?1 ORDER BY lease_expires_at LIMIT ?2",
                (now, limit),
            )
            for (job_id,) in expired:
                for (status,) in self._db.modify(conn, RESCUE, (now, job_id), "status", job_id):
                    outcome[status].append(job_id)
                    record_attempt(conn, job_id, now, "lease_expired")
            count_ended(conn, outcome["failed"], now, failed=True)
        return RescueResult(
            tuple(outcome["pending"]), tuple(outcome["failed"]), tuple(outcome["cancelled"])
        )
