"""Recurring schedules in Redis: a hash per schedule, fired once per fire time by a
script that advances it and enqueues its jobs at once.

The :class:`~jobq.storage.parts.Schedules` part of
:class:`~jobq.storage.redis.RedisStorage`; its arguments were checked by
:class:`~jobq.storage.checked.CheckedStorage`.

Rule: runs scripts and reads only; imports this backend's server and inserts and the
storage contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..base import NewJob, ScheduleState
from .inserts import job_fields
from .server import Server, text


def _state(flat: Sequence[str] | Mapping[str, str]) -> ScheduleState:
    h = flat if isinstance(flat, Mapping) else dict(zip(flat[::2], flat[1::2], strict=True))
    last_fire = h.get("last_fire_at")
    last_job = h.get("last_job_id")
    return ScheduleState(
        h["name"],
        h["spec"],
        float(h["next_fire_at"]),
        None if last_fire is None else float(last_fire),
        None if last_job is None else int(last_job),
        h.get("paused") == "1",
        float(h["updated_at"]),
    )


class RedisSchedules:
    """The schedules of one Redis database."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._p = server.prefix

    def upsert_schedule(
        self, name: str, spec: str, next_fire_at: float, now: float
    ) -> ScheduleState:
        return _state(self._server.run("upsert_schedule", now, name, spec, text(next_fire_at)))

    def fire_schedule(
        self, name: str, fire_at: float, next_fire_at: float, jobs: Sequence[NewJob], now: float
    ) -> list[int] | None:
        args = [arg for job in jobs for arg in job_fields(job)]
        fired = self._server.run(
            "fire_schedule", now, name, text(fire_at), text(next_fire_at), *args
        )
        return None if fired is None else [int(job_id) for job_id in fired[1]]

    def list_schedules(self) -> list[ScheduleState]:
        names = sorted(self._server.members(f"{self._p}schedules"))
        hashes = self._server.hashes([f"{self._p}schedule:{name}" for name in names])
        return [_state(h) for h in hashes if h]

    def set_schedule_paused(
        self, name: str, paused: bool, now: float, next_fire_at: float | None
    ) -> ScheduleState | None:
        flat = self._server.run(
            "pause_schedule", now, name, "1" if paused else "0", text(next_fire_at)
        )
        return None if flat is None else _state(flat)
