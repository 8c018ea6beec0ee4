"""The storage contract: the registry of live worker pools (run once per backend).

Time is passed as ``now=``: a pool is live while seen within its lease period
(or the ``max_age`` asked for), and ages out without anybody waiting."""

from __future__ import annotations

import pytest

from jobq.storage.base import NewJob, Storage
from jobq.storage.workers import FORGET_WORKERS_AFTER, NewWorker, WorkerRegistry
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import T0

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)

LEASE = 30.0


def pool(name: str, *, host: str = "web1", pid: int = 100, concurrency: int = 4) -> NewWorker:
    return NewWorker(
        owner=f"{host}:{pid}:{name}",
        host=host,
        pid=pid,
        name=name,
        queues=("default", "mail"),
        concurrency=concurrency,
        lease_seconds=LEASE,
    )


def registry(storage: Storage) -> WorkerRegistry:
    assert isinstance(storage, WorkerRegistry)
    return storage


def owners(storage: Storage, now: float, max_age: float | None = None) -> list[str]:
    return [w.owner for w in registry(storage).live_workers(now=now, max_age=max_age)]


def test_a_registered_pool_is_live_with_what_it_said_about_itself(storage: Storage) -> None:
    workers = registry(storage)
    workers.register_worker(pool("pool1", concurrency=3), now=T0)
    [info] = workers.live_workers(now=T0 + 1)
    assert (info.owner, info.host, info.pid, info.name) == ("web1:100:pool1", "web1", 100, "pool1")
    assert info.queues == ("default", "mail")
    assert (info.concurrency, info.lease_seconds) == (3, LEASE)
    assert (info.started_at, info.last_seen_at, info.stopping, info.leased) == (T0, T0, False, 0)


def test_a_pool_no_longer_seen_ages_out_after_its_lease(storage: Storage) -> None:
    workers = registry(storage)
    workers.register_worker(pool("pool1"), now=T0)
    workers.register_worker(pool("pool2"), now=T0)
    assert workers.worker_seen("web1:100:pool2", now=T0 + 20)
    assert owners(storage, T0 + LEASE) == ["web1:100:pool1", "web1:100:pool2"]
    assert owners(storage, T0 + LEASE + 0.5) == ["web1:100:pool2"]  # pool1 was killed
    assert owners(storage, T0 + 20 + LEASE + 0.5) == []
    # A longer max_age still shows it; a shorter one drops it sooner.
    assert owners(storage, T0 + LEASE + 0.5, max_age=2 * LEASE) == [
        "web1:100:pool1",
        "web1:100:pool2",
    ]
    assert owners(storage, T0 + 25, max_age=1.0) == []


def test_seen_records_concurrency_and_stopping(storage: Storage) -> None:
    workers = registry(storage)
    workers.register_worker(pool("pool1", concurrency=4), now=T0)
    assert workers.worker_seen("web1:100:pool1", now=T0 + 10, concurrency=9)
    [info] = workers.live_workers(now=T0 + 10)
    assert (info.concurrency, info.last_seen_at, info.stopping) == (9, T0 + 10, False)
    assert workers.worker_seen("web1:100:pool1", now=T0 + 11, stopping=True)
    [info] = workers.live_workers(now=T0 + 11)
    assert (info.concurrency, info.last_seen_at, info.stopping) == (9, T0 + 11, True)


def test_unregister_removes_the_pool_at_once(storage: Storage) -> None:
    workers = registry(storage)
    workers.register_worker(pool("pool1"), now=T0)
    workers.register_worker(pool("pool2"), now=T0)
    assert workers.unregister_worker("web1:100:pool1")
    assert owners(storage, T0) == ["web1:100:pool2"]
    assert not workers.unregister_worker("web1:100:pool1")
    assert not workers.worker_seen("web1:100:pool1", now=T0 + 1)  # gone: register again


def test_registering_again_replaces_the_row(storage: Storage) -> None:
    workers = registry(storage)
    workers.register_worker(pool("pool1", concurrency=2), now=T0)
    assert workers.worker_seen("web1:100:pool1", now=T0 + 5, stopping=True)
    workers.register_worker(pool("pool1", concurrency=6), now=T0 + 100)
    [info] = workers.live_workers(now=T0 + 100)
    assert (info.started_at, info.concurrency, info.stopping) == (T0 + 100, 6, False)


def test_registering_deletes_pools_long_dead_only(storage: Storage) -> None:
    workers = registry(storage)
    workers.register_worker(pool("dead"), now=T0)
    workers.register_worker(pool("recent"), now=T0 + 100)
    later = T0 + FORGET_WORKERS_AFTER + 50
    workers.register_worker(pool("new"), now=later)
    # "dead" was unseen for longer than FORGET_WORKERS_AFTER: its row is gone.
    assert owners(storage, later, max_age=FORGET_WORKERS_AFTER * 2) == [
        "web1:100:new",
        "web1:100:recent",
    ]


def test_pools_are_listed_by_host_pid_and_name(storage: Storage) -> None:
    workers = registry(storage)
    for worker in (pool("b", host="web2", pid=5), pool("z", pid=7), pool("a", pid=7)):
        workers.register_worker(worker, now=T0)
    workers.register_worker(pool("x", pid=30), now=T0)
    assert owners(storage, T0) == ["web1:7:a", "web1:7:z", "web1:30:x", "web2:5:b"]


def test_leased_counts_the_jobs_each_pool_holds(storage: Storage) -> None:
    workers = registry(storage)
    workers.register_worker(pool("busy"), now=T0)
    workers.register_worker(pool("idle"), now=T0)
    storage.enqueue_many([NewJob("t", "[]") for _ in range(3)], now=T0)
    claimed = storage.claim(
        ["default"], owner="web1:100:busy", now=T0, lease_seconds=LEASE, limit=2
    )
    storage.claim(["default"], owner="elsewhere:1:gone", now=T0, lease_seconds=LEASE)
    leased = {w.name: w.leased for w in workers.live_workers(now=T0 + 1)}
    assert leased == {"busy": 2, "idle": 0}
    storage.complete(claimed[0].id, claimed[0].lease_token or "", now=T0 + 2)
    leased = {w.name: w.leased for w in workers.live_workers(now=T0 + 2)}
    assert leased == {"busy": 1, "idle": 0}


def test_bad_arguments_are_refused_before_anything_is_written(storage: Storage) -> None:
    workers = registry(storage)
    with pytest.raises(ValueError, match="concurrency"):
        workers.register_worker(pool("p", concurrency=0), now=T0)
    with pytest.raises(TypeError, match="queues"):
        workers.register_worker(
            NewWorker("h:1:p", "h", 1, "p", "default", 1, LEASE),  # type: ignore[arg-type]
            now=T0,
        )
    with pytest.raises(ValueError, match="lease_seconds"):
        workers.register_worker(NewWorker("h:1:p", "h", 1, "p", (), 1, 0.0), now=T0)
    with pytest.raises(ValueError, match="owner"):
        workers.register_worker(NewWorker("", "h", 1, "p", (), 1, LEASE), now=T0)
    with pytest.raises(ValueError, match="now"):
        workers.worker_seen("h:1:p", now=float("nan"))
    with pytest.raises(ValueError, match="max_age"):
        workers.live_workers(now=T0, max_age=0.0)
    assert workers.live_workers(now=T0, max_age=1e9) == []
