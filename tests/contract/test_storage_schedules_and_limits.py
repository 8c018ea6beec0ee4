"""The storage contract for recurring schedules (a fire is a compare-and-set, so
one process alone enqueues each fire time) and for task limits shared by every
process (concurrency and a sliding rate window). Runs once per backend."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest

from jobq.job import JobStatus
from jobq.storage.base import NewJob, Storage, TaskLimit
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import T0, token

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)

SPEC = json.dumps({"task": "report", "cron": "0 * * * *"})


# -- schedules -------------------------------------------------------------------------


def test_upsert_keeps_the_state_of_an_unchanged_schedule(storage: Storage) -> None:
    first = storage.upsert_schedule("hourly", SPEC, T0 + 3600, now=T0)
    assert (first.name, first.spec, first.next_fire_at, first.paused) == (
        "hourly",
        SPEC,
        T0 + 3600,
        False,
    )
    assert first.last_fire_at is None
    assert first.last_job_id is None
    # Another process starting later declares the same schedule: nothing moves.
    again = storage.upsert_schedule("hourly", SPEC, T0 + 7200, now=T0 + 10)
    assert again.next_fire_at == T0 + 3600
    changed = json.dumps({"task": "report", "cron": "30 * * * *"})
    moved = storage.upsert_schedule("hourly", changed, T0 + 1800, now=T0 + 20)
    assert (moved.spec, moved.next_fire_at) == (changed, T0 + 1800)
    assert [s.name for s in storage.list_schedules()] == ["hourly"]


def test_a_fire_time_fires_once_and_enqueues_its_jobs(storage: Storage) -> None:
    storage.upsert_schedule("hourly", SPEC, T0, now=T0 - 1)
    job = NewJob("report", "[]")
    assert storage.fire_schedule("hourly", T0, T0 + 3600, [job], now=T0 - 0.5) is None  # early
    ids = storage.fire_schedule("hourly", T0, T0 + 3600, [job], now=T0 + 1)
    assert ids is not None
    assert len(ids) == 1
    assert storage.fire_schedule("hourly", T0, T0 + 3600, [job], now=T0 + 2) is None  # again
    state = storage.list_schedules()[0]
    assert (state.next_fire_at, state.last_fire_at, state.last_job_id) == (T0 + 3600, T0, ids[0])
    stored = storage.get(ids[0])
    assert stored is not None
    assert stored.name == "report"
    assert stored.status is JobStatus.PENDING


def test_a_fire_may_enqueue_several_jobs_or_none(storage: Storage) -> None:
    storage.upsert_schedule("s", SPEC, T0, now=T0)
    ids = storage.fire_schedule("s", T0, T0 + 10, [NewJob("t", "[1]"), NewJob("t", "[2]")], now=T0)
    assert ids is not None
    assert len(ids) == 2
    assert storage.fire_schedule("s", T0 + 10, T0 + 20, [], now=T0 + 15) == []  # skipped
    state = storage.list_schedules()[0]
    assert (state.next_fire_at, state.last_fire_at) == (T0 + 20, T0)


def test_paused_schedules_do_not_fire_and_resume_where_told(storage: Storage) -> None:
    storage.upsert_schedule("s", SPEC, T0, now=T0)
    paused = storage.set_schedule_paused("s", True, now=T0)
    assert paused is not None
    assert paused.paused
    assert storage.fire_schedule("s", T0, T0 + 10, [NewJob("t", "[]")], now=T0 + 1) is None
    resumed = storage.set_schedule_paused("s", False, now=T0 + 50, next_fire_at=T0 + 60)
    assert resumed is not None
    assert (resumed.paused, resumed.next_fire_at) == (False, T0 + 60)
    assert storage.set_schedule_paused("nope", True, now=T0) is None


def test_racing_threads_fire_each_time_once(storage: Storage) -> None:
    storage.upsert_schedule("s", SPEC, T0, now=T0)
    wins: list[tuple[int, list[int]]] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def race(slot: int) -> None:
        start.wait()
        for step in range(20):
            fire_at = T0 + 10 * step
            ids = storage.fire_schedule(
                "s", fire_at, fire_at + 10, [NewJob("t", "[]")], now=T0 + 1000
            )
            if ids is not None:
                with lock:
                    wins.append((step, ids))

    threads = [threading.Thread(target=race, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(step for step, _ in wins) == list(range(20))
    assert len(storage.list_jobs(limit=1000)) == 20


# -- task limits -----------------------------------------------------------------------


def claim(storage: Storage, now: float = T0, limit: int = 100, **options: object) -> list[str]:
    jobs = storage.claim(["default"], owner="w", now=now, lease_seconds=600, limit=limit, **options)  # type: ignore[arg-type]
    return [job.name for job in jobs]


def test_concurrency_limit_counts_running_jobs_of_every_worker(storage: Storage) -> None:
    storage.enqueue_many(
        [NewJob("report", "[]", priority=1)] * 5 + [NewJob("mail", "[]")] * 3, now=T0
    )
    limits = {"report": TaskLimit(concurrency=2)}
    assert Counter(claim(storage, limits=limits)) == {"report": 2, "mail": 3}
    assert claim(storage, limits=limits) == []  # two reports run: no third
    running = storage.list_jobs(status=JobStatus.PROCESSING, name="report")
    assert storage.complete(running[0].id, token(running[0]), now=T0)
    assert claim(storage, limits=limits) == ["report"]


def test_blocked_tasks_do_not_hide_the_jobs_behind_them(storage: Storage) -> None:
    storage.enqueue_many([NewJob("report", "[]", priority=9)] * 50 + [NewJob("mail", "[]")], now=T0)
    limits = {"report": TaskLimit(concurrency=1)}
    assert claim(storage, limit=1, limits=limits) == ["report"]
    assert claim(storage, limit=1, limits=limits) == ["mail"]


def test_rate_window_is_shared_and_slides(storage: Storage) -> None:
    storage.enqueue_many([NewJob("a", "[]")] * 6 + [NewJob("b", "[]")] * 6, now=T0)
    shared = TaskLimit(rate=4, per=10.0, rate_key="api.example.com")
    limits = {"a": shared, "b": shared}
    assert len(claim(storage, now=T0, limits=limits)) == 4
    assert claim(storage, now=T0 + 9.9, limits=limits) == []
    assert len(claim(storage, now=T0 + 10.0, limits=limits)) == 4  # the window moved on
    assert len(claim(storage, now=T0 + 20.0, limits=limits)) == 4
    assert claim(storage, now=T0 + 30.0, limits=limits) == []  # nothing left


def test_limited_at_most_caps_only_the_limited_tasks(storage: Storage) -> None:
    storage.enqueue_many([NewJob("hook", "[]")] * 5 + [NewJob("plain", "[]")] * 5, now=T0)
    limits = {"hook": TaskLimit(rate=100, per=1.0)}
    names = claim(storage, limits=limits, limited_at_most=1)
    assert Counter(names) == {"hook": 1, "plain": 5}


def test_bad_limits_are_refused_before_claiming(storage: Storage) -> None:
    storage.enqueue(NewJob("a", "[]"), now=T0)
    with pytest.raises(ValueError, match="concurrency"):
        claim(storage, limits={"a": TaskLimit(concurrency=0)})
    with pytest.raises(ValueError, match="different rates"):
        claim(
            storage,
            limits={"a": TaskLimit(rate=1, rate_key="k"), "b": TaskLimit(rate=2, rate_key="k")},
        )
    assert storage.get(1).status is JobStatus.PENDING  # type: ignore[union-attr]


def test_racing_claimers_never_exceed_a_concurrency_limit(storage: Storage) -> None:
    storage.enqueue_many([NewJob("report", "[]")] * 60, now=T0)
    limits = {"report": TaskLimit(concurrency=3)}
    peak = 0
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(slot: int) -> None:
        nonlocal peak
        try:
            while True:
                jobs = storage.claim(
                    ["default"], owner=f"w{slot}", now=T0, lease_seconds=600, limit=2, limits=limits
                )
                if not jobs:
                    if not storage.list_jobs(status=JobStatus.PENDING, limit=1):
                        return
                    continue
                running = len(storage.list_jobs(status=JobStatus.PROCESSING, limit=100))
                with lock:
                    peak = max(peak, running)
                for job in jobs:
                    storage.complete(job.id, token(job), now=T0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert 1 <= peak <= 3
    assert len(storage.list_jobs(status=JobStatus.COMPLETED, limit=100)) == 60
