"""Filters and bulk actions in PostgreSQL: the :class:`~jobq.storage.bulk.BulkStore`
part of :class:`~jobq.storage.postgres.PostgresStorage`; its arguments were
checked (and each action's filter narrowed to the statuses it acts on) by
:class:`~jobq.storage.bulk.CheckedBulk`.

The payload column is ``text``: a payload match reads it as ``jsonb`` row by
row and compares ``jsonb`` values, which keeps JSON types apart (``42`` is not
``"42"``, ``true`` is not ``1``; ``42`` equals ``42.0``). Each batch is one
statement: it locks up to ``batch_size`` matches past the cursor, in id order
(waiting for a worker's short transaction on one of them, then checking the
filter again), and changes them.

Rule: runs SQL only; imports this backend's connections and SQL text, and the
storage contract.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg.errors

from .._rows import COLS, job_rows, row_to_job
from ..base import Job
from ..bulk import BulkResult, JobFilter, PayloadMatch, filter_terms
from . import sql
from .admin import fold_counts
from .connection import Database

_RETRIES = 3
"""Tries of a retry batch that met a unique key taken meanwhile by a new job."""


def payload_term(match: PayloadMatch) -> tuple[str, list[Any]]:
    """The WHERE term for one payload match (containment for the keyword
    argument, the array element for the positional one)."""
    value = json.dumps(match.value)
    term = "payload::jsonb @> %s::jsonb"
    params: list[Any] = [json.dumps({"kwargs": {match.key: match.value}})]
    if match.position is None:
        return term, params
    return (
        f"({term} OR (payload::jsonb -> 'args' -> %s) = %s::jsonb)",
        [*params, match.position, value],
    )


def where(filter: JobFilter, extra: tuple[str, ...] = ()) -> tuple[str, list[Any]]:
    """``WHERE ...`` (or nothing) for ``filter`` and the ``extra`` terms."""
    terms, params = filter_terms(filter, "%s", payload_term)
    terms.extend(extra)
    return (f"WHERE {' AND '.join(terms)} " if terms else ""), params


_NOW = "coalesce(%s::float8, extract(epoch from statement_timestamp())::float8)"
_RETRY_SET = (
    f"status = 'pending', attempts = 0, run_at = {_NOW}, cancel_requested = false, "
    "expires_at = NULL, result = NULL, progress = NULL, started_at = NULL, finished_at = NULL, "
    f"lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = {_NOW}"
)
_CANCEL_SET = (
    "status = CASE WHEN j.status = 'pending' THEN 'cancelled' ELSE j.status END, "
    "cancel_requested = j.status = 'processing' OR j.cancel_requested, "
    f"finished_at = CASE WHEN j.status = 'pending' THEN {_NOW} ELSE j.finished_at END, "
    f"updated_at = {_NOW}"
)
_NOT_ASKED = "NOT (status = 'processing' AND cancel_requested)"
# Of the batch, the jobs a retry may make pending: no live job holds their unique
# key, and for a key several of them share, only the oldest.
_FREE_KEYS = (
    "SELECT id FROM batch WHERE unique_key IS NULL UNION ALL "
    "(SELECT DISTINCT ON (name, unique_key) id FROM batch b WHERE unique_key IS NOT NULL "
    "AND NOT EXISTS (SELECT 1 FROM jobq_jobs l WHERE l.name = b.name "
    "AND l.unique_key = b.unique_key AND l.status IN ('pending', 'processing')) "
    "ORDER BY name, unique_key, id)"
)


class PostgresBulk:
    """Finds, counts and acts on the jobs of one PostgreSQL database that match a filter."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def find(
        self, filter: JobFilter, after_id: int | None, limit: int, newest_first: bool
    ) -> list[Job]:
        extra = () if after_id is None else (f"id {'<' if newest_first else '>'} {after_id:d}",)
        clause, params = where(filter, extra)
        order = "DESC" if newest_first else "ASC"
        statement = f"SELECT {COLS} FROM jobq_jobs {clause}ORDER BY id {order} LIMIT %s"
        return [row_to_job(row) for row in job_rows(self._db.run(statement, (*params, limit)))]

    def count(self, filter: JobFilter) -> int:
        clause, params = where(filter)
        return int(self._db.run(f"SELECT count(*) FROM jobq_jobs {clause}", params)[0][0])

    def _batches(
        self,
        filter: JobFilter,
        batch_size: int,
        action: str,
        action_params: list[Any],
        chosen: str = "SELECT id FROM batch",
        extra: tuple[str, ...] = (),
    ) -> tuple[BulkResult, set[str]]:
        """Run ``action`` (an UPDATE or DELETE of ``jobq_jobs j`` joined with the
        ids of ``chosen``, returning ``j.queue``) a batch per statement; return
        the result and the queues touched."""
        changed = skipped = 0
        cursor = 0
        queues: set[str] = set()
        clause, params = where(filter, (*extra, "id > %s"))
        statement = (
            f"WITH batch AS MATERIALIZED (SELECT id, name, unique_key FROM jobq_jobs {clause}"
            "ORDER BY id LIMIT %s FOR UPDATE), "
            f"chosen AS ({chosen}), done AS ({action} RETURNING j.queue) "
            "SELECT (SELECT count(*) FROM batch), (SELECT max(id) FROM batch), "
            "(SELECT count(*) FROM done), (SELECT array_agg(DISTINCT queue) FROM done)"
        )
        while True:
            found, last, done, touched = self._run(
                statement, [*params, cursor, batch_size, *action_params]
            )
            if not found:
                break
            changed += done
            skipped += found - done
            queues.update(touched or ())
            cursor = int(last)
            if found < batch_size:
                break
        return BulkResult(changed, skipped), queues

    def _run(self, statement: str, params: list[Any]) -> tuple[Any, ...]:
        for attempt in range(_RETRIES):
            try:
                return tuple(self._db.run(statement, params)[0])
            except psycopg.errors.UniqueViolation:
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def retry(self, filter: JobFilter, now: float, batch_size: int) -> BulkResult:
        at = self._db.now(now)
        result, queues = self._batches(
            filter,
            batch_size,
            f"UPDATE jobq_jobs j SET {_RETRY_SET} FROM chosen WHERE j.id = chosen.id",
            [at, at],
            chosen=_FREE_KEYS,
        )
        if queues:
            self._db.run(sql.NOTIFY, (sorted(queues),))
        return result

    def cancel(self, filter: JobFilter, now: float, batch_size: int) -> BulkResult:
        at = self._db.now(now)
        result, _ = self._batches(
            filter,
            batch_size,
            f"UPDATE jobq_jobs j SET {_CANCEL_SET} FROM chosen WHERE j.id = chosen.id",
            [at, at],
            extra=(_NOT_ASKED,),
        )
        return result

    def delete(self, filter: JobFilter, now: float, batch_size: int) -> BulkResult:
        result, _ = self._batches(
            filter, batch_size, "DELETE FROM jobq_jobs j USING chosen WHERE j.id = chosen.id", []
        )
        if result.changed:
            fold_counts(self._db)
        return result
