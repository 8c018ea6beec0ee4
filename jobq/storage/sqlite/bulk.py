"""Filters and bulk actions in SQLite: the :class:`~jobq.storage.bulk.BulkStore`
part of :class:`~jobq.storage.sqlite.SQLiteStorage`; its arguments were checked
(and each action's filter narrowed to the statuses it acts on) by
:class:`~jobq.storage.bulk.CheckedBulk`.

Payload matches use ``json_type`` and ``json_extract`` (JSON1, built into
SQLite), so a JSON ``true`` never equals 1 and ``42`` never equals ``"42"``.
Each batch is one ``BEGIN IMMEDIATE`` transaction: it finds the id of the
batch's last match, then changes the matches up to that id (the filter again,
under the same write lock, so exactly the batch).

Rule: runs SQL only; imports this backend's database and the storage contract.
"""

from __future__ import annotations

from typing import Any

from .._rows import COLS, job_rows, row_to_job
from ..base import Job
from ..bulk import BulkResult, JobFilter, PayloadMatch, filter_terms
from .database import Database

_TYPES: dict[type, str] = {
    bool: "json_type(payload, ?) = CASE WHEN ? THEN 'true' ELSE 'false' END",
    str: "(json_type(payload, ?) = 'text' AND json_extract(payload, ?) = ?)",
    int: "(json_type(payload, ?) IN ('integer', 'real') AND json_extract(payload, ?) = ?)",
}


def _one(path: str, value: Any) -> tuple[str, list[Any]]:
    if value is None:
        return "json_type(payload, ?) = 'null'", [path]
    if isinstance(value, bool):
        return _TYPES[bool], [path, value]
    kind = str if isinstance(value, str) else int
    return _TYPES[kind], [path, path, value]


def payload_term(match: PayloadMatch) -> tuple[str, list[Any]]:
    """The WHERE term for one payload match (the key is an identifier: no quoting)."""
    term, params = _one(f"$.kwargs.{match.key}", match.value)
    if match.position is None:
        return term, params
    other, more = _one(f"$.args[{match.position}]", match.value)
    return f"({term} OR {other})", params + more


def where(filter: JobFilter, extra: tuple[str, ...] = ()) -> tuple[str, list[Any]]:
    """``WHERE ...`` (or nothing) for ``filter`` and the ``extra`` terms."""
    terms, params = filter_terms(filter, "?", payload_term)
    terms.extend(extra)
    return (f"WHERE {' AND '.join(terms)} " if terms else ""), params


_RETRY_SET = (
    "status = 'pending', attempts = 0, run_at = ?, cancel_requested = 0, result = NULL, "
    "expires_at = NULL, "
    "progress = NULL, started_at = NULL, finished_at = NULL, lease_owner = NULL, "
    "lease_token = NULL, lease_expires_at = NULL, updated_at = ?"
)
_CANCEL_SET = (
    "status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END, "
    "cancel_requested = CASE WHEN status = 'processing' THEN 1 ELSE cancel_requested END, "
    "finished_at = CASE WHEN status = 'pending' THEN ? ELSE finished_at END, updated_at = ?"
)
_NOT_ASKED = "NOT (status = 'processing' AND cancel_requested)"
SORT_AT_MOST = 20_000
"""Most pending (or processing) jobs a page of that status alone sorts in memory,
read off their partial index; beyond it, the table is walked in id order (the
status is then common, so a page fills fast)."""
_LIVE_INDEX = {"pending": "jobs_due", "processing": "jobs_lease"}
_LIVE_COUNT = "SELECT coalesce(sum(jobs), 0) FROM job_counts WHERE status = ?"


class SQLiteBulk:
    """Finds, counts and acts on the jobs of one SQLite file that match a filter."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def find(
        self, filter: JobFilter, after_id: int | None, limit: int, newest_first: bool
    ) -> list[Job]:
        extra: tuple[str, ...] = ()
        if after_id is not None:
            extra = (f"id {'<' if newest_first else '>'} {after_id:d}",)
        source = "jobs"
        live = self._few_live(filter)
        if live is not None:
            # Few pending (or processing) jobs among many: read them off their partial
            # index and sort, rather than walk every finished job in id order.
            source = f"jobs INDEXED BY {_LIVE_INDEX[live]}"
            extra = (*extra, f"status = '{live}'")
        clause, params = where(filter, extra)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT {COLS} FROM {source} {clause}ORDER BY id {order} LIMIT ?"
        return [row_to_job(row) for row in job_rows(self._db.query(sql, (*params, limit)))]

    def _few_live(self, filter: JobFilter) -> str | None:
        """``"pending"`` or ``"processing"`` when the filter asks for that status alone
        and at most :data:`SORT_AT_MOST` jobs have it (the kept counts say so)."""
        if len(filter.statuses) != 1:
            return None
        status = next(iter(filter.statuses)).value
        if status not in _LIVE_INDEX:
            return None
        held = self._db.query(_LIVE_COUNT, (status,))[0][0]
        return status if held <= SORT_AT_MOST else None

    def count(self, filter: JobFilter) -> int:
        clause, params = where(filter)
        return int(self._db.query(f"SELECT count(*) FROM jobs {clause}", params)[0][0])

    def _batches(
        self,
        filter: JobFilter,
        batch_size: int,
        change: str,
        change_params: list[Any],
        extra: tuple[str, ...] = (),
    ) -> BulkResult:
        """Run ``change`` (an UPDATE or DELETE head, ending before WHERE) on the
        matches, a batch per transaction; ``skipped`` counts matches it left."""
        changed = skipped = 0
        cursor = 0
        while True:
            clause, params = where(filter, (*extra, "id > ?"))
            with self._db.write() as conn:
                found, last = conn.query(
                    f"SELECT count(*), max(id) FROM (SELECT id FROM jobs {clause}"
                    "ORDER BY id LIMIT ?)",
                    (*params, cursor, batch_size),
                )[0]
                if not found:
                    break
                done = conn.run(
                    f"{change} {clause}AND id <= ?", (*change_params, *params, cursor, last)
                )
                if change.startswith("DELETE"):
                    conn.run("DELETE FROM job_counts WHERE jobs = 0")
            changed += done
            skipped += found - done
            cursor = int(last)
            if found < batch_size:
                break
        return BulkResult(changed, skipped)

    def retry(self, filter: JobFilter, now: float, batch_size: int) -> BulkResult:
        # OR IGNORE: a job whose unique key is held by a live job (or by one this
        # statement already made pending) is left failed or cancelled, and counted.
        return self._batches(
            filter, batch_size, f"UPDATE OR IGNORE jobs SET {_RETRY_SET}", [now, now]
        )

    def cancel(self, filter: JobFilter, now: float, batch_size: int) -> BulkResult:
        return self._batches(
            filter, batch_size, f"UPDATE jobs SET {_CANCEL_SET}", [now, now], (_NOT_ASKED,)
        )

    def delete(self, filter: JobFilter, now: float, batch_size: int) -> BulkResult:
        return self._batches(filter, batch_size, "DELETE FROM jobs", [])
