"""Recurring schedules in PostgreSQL: stored, listed, paused, and fired once per
fire time by exactly one process on any host.

The :class:`~jobq.storage.parts.Schedules` part of
:class:`~jobq.storage.postgres.PostgresStorage`; its arguments were checked by
:class:`~jobq.storage.checked.CheckedStorage`.

Rule: runs SQL only; imports this backend's connections, SQL text and inserts
(a fire enqueues its jobs in its own transaction), the shared rows and the
storage contract.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._rows import SCHEDULE_COLS, schedule_states
from ..base import NewJob, ScheduleState
from . import sql
from .connection import Database
from .inserts import insert_jobs


class PostgresSchedules:
    """The schedules of one PostgreSQL database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert_schedule(
        self, name: str, spec: str, next_fire_at: float, now: float
    ) -> ScheduleState:
        self._db.run(
            sql.UPSERT_SCHEDULE,
            {"name": name, "spec": spec, "next": float(next_fire_at), "now": self._db.now(now)},
        )
        return schedule_states(self._db.run(sql.SCHEDULE_BY_NAME, (name,)))[0]

    def fire_schedule(
        self, name: str, fire_at: float, next_fire_at: float, jobs: Sequence[NewJob], now: float
    ) -> list[int] | None:
        now_param = self._db.now(now)
        with self._db.conn() as conn, conn.transaction():
            fired = conn.execute(
                sql.FIRE,
                {
                    "next": float(next_fire_at),
                    "name": name,
                    "fire_at": float(fire_at),
                    "now": now_param,
                },
            )
            if fired.rowcount != 1:
                return None
            ids = insert_jobs(conn, jobs, now_param)
            if ids:
                conn.execute(sql.FIRED, {"fire_at": float(fire_at), "job": ids[-1], "name": name})
                conn.execute(sql.NOTIFY, (sorted({job.queue for job in jobs}),))
        return ids

    def list_schedules(self) -> list[ScheduleState]:
        return schedule_states(
            self._db.run(f"SELECT {SCHEDULE_COLS} FROM jobq_schedules ORDER BY name")
        )

    def set_schedule_paused(
        self, name: str, paused: bool, now: float, next_fire_at: float | None
    ) -> ScheduleState | None:
        rows = self._db.run(
            sql.PAUSE_SCHEDULE,
            {"paused": paused, "next": next_fire_at, "name": name, "now": self._db.now(now)},
        )
        return schedule_states(rows)[0] if rows else None
