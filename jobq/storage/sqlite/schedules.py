"""Recurring schedules in SQLite: stored, listed, paused, and fired once per fire
time by exactly one process.

The :class:`~jobq.storage.parts.Schedules` part of
:class:`~jobq.storage.sqlite.SQLiteStorage`; its arguments were checked by
:class:`~jobq.storage.checked.CheckedStorage`.

Rule: runs SQL only; imports this backend's database, SQL text and inserts
(a fire enqueues its jobs in its own transaction), the shared rows and the
storage contract.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._rows import SCHEDULE_COLS, schedule_states
from ..base import NewJob, ScheduleState
from .database import Database
from .inserts import SQLiteInserts
from .sql import FIRE, SCHEDULE_BY_NAME


class SQLiteSchedules:
    """The schedules of one SQLite file."""

    def __init__(self, db: Database, inserts: SQLiteInserts) -> None:
        self._db = db
        self._inserts = inserts

    def upsert_schedule(
        self, name: str, spec: str, next_fire_at: float, now: float
    ) -> ScheduleState:
        with self._db.write() as conn:
            conn.run(
                "INSERT INTO schedules (name, spec, next_fire_at, updated_at) "
                "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name) DO UPDATE SET spec = ?2, "
                "next_fire_at = ?3, updated_at = ?4 WHERE spec <> ?2",
                (name, spec, next_fire_at, now),
            )
            rows = conn.query(SCHEDULE_BY_NAME, (name,))
        return schedule_states(rows)[0]

    def fire_schedule(
        self, name: str, fire_at: float, next_fire_at: float, jobs: Sequence[NewJob], now: float
    ) -> list[int] | None:
        with self._db.write() as conn:
            if conn.run(FIRE, (next_fire_at, fire_at, now, name)) != 1:
                return None
            ids = self._inserts.insert_jobs(conn, jobs, now)
            if ids:
                conn.run(
                    "UPDATE schedules SET last_fire_at = ?1, last_job_id = ?2 WHERE name = ?3",
                    (fire_at, ids[-1], name),
                )
        return ids

    def list_schedules(self) -> list[ScheduleState]:
        rows = self._db.query(f"SELECT {SCHEDULE_COLS} FROM schedules ORDER BY name")
        return schedule_states(rows)

    def set_schedule_paused(
        self, name: str, paused: bool, now: float, next_fire_at: float | None
    ) -> ScheduleState | None:
        with self._db.write() as conn:
            conn.run(
                "UPDATE schedules SET paused = ?1, next_fire_at = coalesce(?2, next_fire_at), "
                "updated_at = ?3 WHERE name = ?4",
                (int(paused), next_fire_at, now, name),
            )
            rows = conn.query(SCHEDULE_BY_NAME, (name,))
        return schedule_states(rows)[0] if rows else None
