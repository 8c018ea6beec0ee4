"""The storage contract for per-key limits (``TaskLimit(per_key=True)``): a job's
``limit_key`` is stored as given on every enqueue path, concurrency and rate
windows hold for each key on its own (jobs without a key form one group), and a
key at its limit never hides the jobs of other keys behind it. Runs once per backend."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from jobq.job import Job, JobStatus
from jobq.storage.base import NewJob, Storage, TaskLimit
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import T0, token

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)

ONE_PER_KEY = {"sync": TaskLimit(concurrency=1, per_key=True)}


def claim(
    storage: Storage, now: float = T0, limit: int = 100, **options: object
) -> list[tuple[str, str | None]]:
    jobs = storage.claim(["default"], owner="w", now=now, lease_seconds=600, limit=limit, **options)  # type: ignore[arg-type]
    return sorted(((job.name, job.limit_key) for job in jobs), key=lambda p: (p[0], p[1] or ""))


def sync(key: str | None, priority: int = 0) -> NewJob:
    return NewJob("sync", "[]", priority=priority, limit_key=key)


def test_every_enqueue_path_stores_the_limit_key(storage: Storage) -> None:
    one = storage.enqueue(sync("acct-1"), now=T0).job
    assert one.limit_key == "acct-1"
    many = storage.enqueue_many(
        [sync("acct-2"), sync(None), NewJob("sync", "[]", unique_key="u", limit_key="acct-3")],
        now=T0,
    )
    same = storage.enqueue_payloads(sync("acct-4"), ["[1]", "[2]"], now=T0)
    storage.upsert_schedule("s", "{}", T0, now=T0)
    fired = storage.fire_schedule("s", T0, T0 + 60, [sync("acct-5")], now=T0)
    assert fired is not None
    stored = {job.id: job.limit_key for job in storage.list_jobs(limit=100)}
    assert [stored[i] for i in (one.id, *many, *same, *fired)] == [
        "acct-1",
        "acct-2",
        None,
        "acct-3",
        "acct-4",
        "acct-4",
        "acct-5",
    ]
    got = storage.get(one.id)
    assert got is not None
    assert got.limit_key == "acct-1"


@pytest.mark.parametrize("bad", ["", "a\x1fb", "tab\there", "x" * 201, 7])
def test_a_bad_limit_key_is_refused_and_nothing_written(storage: Storage, bad: object) -> None:
    with pytest.raises(ValueError, match="limit_key"):
        storage.enqueue(NewJob("sync", "[]", limit_key=bad), now=T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"limit_key.*jobs\[1\]"):
        storage.enqueue_many([sync("ok"), NewJob("sync", "[]", limit_key=bad)], now=T0)  # type: ignore[arg-type]
    assert storage.list_jobs(limit=10) == []


def test_concurrency_holds_per_key_and_other_keys_go_on(storage: Storage) -> None:
    storage.enqueue_many(
        [sync("a")] * 3 + [sync("b")] * 2 + [sync(None)] * 2 + [NewJob("mail", "[]")], now=T0
    )
    assert claim(storage, limits=ONE_PER_KEY) == [
        ("mail", None),
        ("sync", None),
        ("sync", "a"),
        ("sync", "b"),
    ]
    assert claim(storage, limits=ONE_PER_KEY) == []  # one of each key runs: no second
    running = storage.list_jobs(status=JobStatus.PROCESSING, name="sync")
    done = next(job for job in running if job.limit_key == "a")
    assert storage.complete(done.id, token(done), now=T0)
    assert claim(storage, limits=ONE_PER_KEY) == [("sync", "a")]


def test_a_per_key_concurrency_above_one(storage: Storage) -> None:
    storage.enqueue_many([sync("a")] * 5 + [sync("b")] * 5, now=T0)
    limits = {"sync": TaskLimit(concurrency=2, per_key=True)}
    assert Counter(claim(storage, limit=3, limits=limits)) == {("sync", "a"): 2, ("sync", "b"): 1}
    assert claim(storage, limits=limits) == [("sync", "b")]
    assert claim(storage, limits=limits) == []


def test_many_jobs_of_a_blocked_key_do_not_hold_back_other_keys(storage: Storage) -> None:
    # Account a's 1,000 jobs come first in claim order (higher priority); b's one
    # job is behind them all.
    storage.enqueue_many([sync("a", priority=5)] * 1000 + [sync("b")], now=T0)
    assert claim(storage, limit=1, limits=ONE_PER_KEY) == [("sync", "a")]
    assert claim(storage, limit=1, limits=ONE_PER_KEY) == [("sync", "b")]
    assert claim(storage, limits=ONE_PER_KEY) == []


def test_one_claim_goes_past_the_key_it_just_filled(storage: Storage) -> None:
    storage.enqueue_many([sync("a", priority=5)] * 300 + [sync("b")] + [sync("c")], now=T0)
    # The first candidates are all a's: the claim takes one, then looks again without a.
    assert claim(storage, limit=3, limits=ONE_PER_KEY) == [
        ("sync", "a"),
        ("sync", "b"),
        ("sync", "c"),
    ]


def test_rate_windows_hold_per_key_and_slide(storage: Storage) -> None:
    storage.enqueue_many([sync("a")] * 5 + [sync("b")] * 5, now=T0)
    limits = {"sync": TaskLimit(rate=2, per=60.0, per_key=True)}
    assert Counter(claim(storage, now=T0, limits=limits)) == {("sync", "a"): 2, ("sync", "b"): 2}
    assert claim(storage, now=T0 + 59.9, limits=limits) == []
    assert Counter(claim(storage, now=T0 + 60.0, limits=limits)) == {
        ("sync", "a"): 2,
        ("sync", "b"): 2,
    }
    assert claim(storage, now=T0 + 61.0, limits=limits) == []


def test_a_rate_filled_key_does_not_hold_back_other_keys(storage: Storage) -> None:
    storage.enqueue_many([sync("a", priority=5)] * 500 + [sync("b")], now=T0)
    limits = {"sync": TaskLimit(rate=1, per=60.0, per_key=True)}
    assert claim(storage, limit=1, now=T0, limits=limits) == [("sync", "a")]
    assert claim(storage, limit=1, now=T0 + 1, limits=limits) == [("sync", "b")]
    assert claim(storage, now=T0 + 2, limits=limits) == []


def test_tasks_sharing_a_rate_key_share_each_keys_window(storage: Storage) -> None:
    storage.enqueue_many(
        [NewJob("push", "[]", limit_key="t1")] * 3
        + [NewJob("pull", "[]", limit_key="t1")] * 3
        + [NewJob("pull", "[]", limit_key="t2")] * 3,
        now=T0,
    )
    shared = TaskLimit(rate=2, per=10.0, rate_key="partner-api", per_key=True)
    limits = {"push": shared, "pull": shared}
    jobs = storage.claim(["default"], owner="w", now=T0, lease_seconds=60, limit=100, limits=limits)
    assert Counter(job.limit_key for job in jobs) == {"t1": 2, "t2": 2}


def test_a_task_wide_rate_and_a_per_key_one_cannot_share_a_rate_key(storage: Storage) -> None:
    storage.enqueue(sync("a"), now=T0)
    with pytest.raises(ValueError, match="different rates"):
        claim(
            storage,
            limits={
                "sync": TaskLimit(rate=1, rate_key="k", per_key=True),
                "other": TaskLimit(rate=1, rate_key="k"),
            },
        )
    with pytest.raises(ValueError, match="per_key must be a bool"):
        claim(storage, limits={"sync": TaskLimit(concurrency=1, per_key="yes")})  # type: ignore[arg-type]
    assert claim(storage, limits=ONE_PER_KEY) == [("sync", "a")]


def test_keys_are_ignored_by_a_task_wide_limit(storage: Storage) -> None:
    storage.enqueue_many([sync("a")] * 2 + [sync("b")] * 2, now=T0)
    assert len(claim(storage, limits={"sync": TaskLimit(concurrency=1)})) == 1
    assert claim(storage, limits={"sync": TaskLimit(concurrency=1)}) == []


def test_racing_claimers_never_run_two_jobs_of_a_key(storage: Storage) -> None:
    storage.enqueue_many([sync(f"k{n % 4}") for n in range(60)], now=T0)
    overlaps: list[list[Job]] = []
    peak = 0
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(slot: int) -> None:
        nonlocal peak
        try:
            while True:
                jobs = storage.claim(
                    ["default"], owner=f"w{slot}", now=T0, lease_seconds=600, limit=2,
                    limits=ONE_PER_KEY,
                )  # fmt: skip
                if not jobs:
                    if not storage.list_jobs(status=JobStatus.PENDING, limit=1):
                        return
                    continue
                running = storage.list_jobs(status=JobStatus.PROCESSING, limit=100)
                keys = Counter(job.limit_key for job in running)
                with lock:
                    peak = max(peak, len(running))
                    if max(keys.values()) > 1:
                        overlaps.append(running)
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
    assert overlaps == []
    assert 1 <= peak <= 4
    assert len(storage.list_jobs(status=JobStatus.COMPLETED, limit=100)) == 60
