"""The storage contract: the registry's process identity and busy threads, and the
release of a dead pool's jobs (run once per backend, time passed as ``now=``)."""

from __future__ import annotations

import pytest

from jobq.job import JobStatus
from jobq.storage.base import NewJob, Storage
from jobq.storage.history import JobHistory
from jobq.storage.workers import NewWorker, WorkerRegistry, WorkerThread
from tests.contract._backends import CORE_BACKENDS
from tests.contract._support import T0

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)

LEASE = 300.0
BOOT = "6a1e0d9c-0000-4000-8000-000000000001"
NS = 4026531836  # a pid namespace's inode: larger than a 32-bit integer


def pool(name: str, *, pid: int = 100, host: str = "web1", boot: str = BOOT) -> NewWorker:
    return NewWorker(
        owner=f"{host}:{pid}:{name}",
        host=host,
        pid=pid,
        name=name,
        queues=("default",),
        concurrency=2,
        lease_seconds=LEASE,
        boot_id=boot,
        pid_namespace=NS,
        process_start=123456 + pid,
    )


def registry(storage: Storage) -> WorkerRegistry:
    assert isinstance(storage, WorkerRegistry)
    return storage


def test_a_pool_records_its_process_identity(storage: Storage) -> None:
    workers = registry(storage)
    workers.register_worker(pool("p"), now=T0)
    [info] = workers.live_workers(now=T0)
    assert (info.boot_id, info.pid_namespace, info.process_start) == (BOOT, NS, 123556)
    assert info.threads == ()
    unknown = NewWorker("h:1:q", "h", 1, "q", ("default",), 1, LEASE)
    workers.register_worker(unknown, now=T0)
    info = next(w for w in workers.live_workers(now=T0) if w.name == "q")
    assert (info.boot_id, info.pid_namespace, info.process_start) == (None, None, None)


def test_the_heartbeat_writes_the_busy_threads(storage: Storage) -> None:
    workers = registry(storage)
    workers.register_worker(pool("p"), now=T0)
    threads = (
        WorkerThread(7, "send_email", "jobq-p-1", T0 + 1.5),
        WorkerThread(9, "report", "jobq-p-2", T0 + 2.0, stuck_since=T0 + 12.0),
    )
    assert workers.worker_seen("web1:100:p", now=T0 + 20, threads=threads)
    [info] = workers.live_workers(now=T0 + 20)
    assert info.threads == threads
    assert info.as_dict()["threads"][1] == {
        "job_id": 9,
        "task": "report",
        "thread": "jobq-p-2",
        "started_at": T0 + 2.0,
        "stuck_since": T0 + 12.0,
    }
    # Not given: kept as they were; given empty: none busy.
    assert workers.worker_seen("web1:100:p", now=T0 + 30, concurrency=3)
    assert workers.live_workers(now=T0 + 30)[0].threads == threads
    assert workers.worker_seen("web1:100:p", now=T0 + 40, threads=())
    assert workers.live_workers(now=T0 + 40)[0].threads == ()


def test_host_workers_lists_the_pools_of_one_host_boot_and_namespace(storage: Storage) -> None:
    workers = registry(storage)
    for worker in (
        pool("b", pid=7),
        pool("a", pid=7),
        pool("x", pid=3),
        pool("other-host", host="web2"),
        pool("other-boot", boot="another-boot"),
        NewWorker("web1:5:unknown", "web1", 5, "unknown", (), 1, LEASE),
    ):
        workers.register_worker(worker, now=T0)
    # Long unseen rows are listed too: their pools may have died long ago.
    found = workers.host_workers("web1", boot_id=BOOT, pid_namespace=NS)
    assert [w.owner for w in found] == ["web1:3:x", "web1:7:a", "web1:7:b"]
    assert workers.host_workers("web1", boot_id=BOOT, pid_namespace=NS + 1) == []


def _claim(storage: Storage, owner: str, count: int, *, now: float = T0) -> list[int]:
    claimed = storage.claim(["default"], owner=owner, now=now, lease_seconds=LEASE, limit=count)
    assert len(claimed) == count
    return [job.id for job in claimed]


def test_release_owner_releases_the_dead_pools_jobs_and_deletes_its_row(storage: Storage) -> None:
    workers = registry(storage)
    workers.register_worker(pool("dead"), now=T0)
    workers.register_worker(pool("live", pid=200), now=T0)
    storage.enqueue_many([NewJob("t", "[]", max_attempts=2) for _ in range(6)], now=T0)
    dead = _claim(storage, "web1:100:dead", 3)
    live = _claim(storage, "web1:200:live", 2)
    assert storage.request_cancel(dead[2], now=T0 + 1) is not None  # cancel requested while running
    [info] = [w for w in workers.live_workers(now=T0 + 1) if w.name == "dead"]
    rescued = workers.release_owner("web1:100:dead", started_at=info.started_at, now=T0 + 2)
    assert (rescued.requeued, rescued.failed, rescued.cancelled) == (
        (dead[0], dead[1]),
        (),
        (dead[2],),
    )
    job = storage.get(dead[0])
    assert job is not None
    assert job.status is JobStatus.PENDING
    assert job.error is not None
    assert job.error.type == "WorkerDied"
    assert "web1:100:dead" in job.error.message
    assert "attempt 1 of 2" in job.error.message
    for job_id in live:  # the live pool's jobs are untouched
        held = storage.get(job_id)
        assert held is not None
        assert held.status is JobStatus.PROCESSING
    assert [w.name for w in workers.live_workers(now=T0 + 2)] == ["live"]
    # Once more: the row is gone, nothing more happens.
    again = workers.release_owner("web1:100:dead", started_at=info.started_at, now=T0 + 3)
    assert again.total == 0


def test_out_of_attempts_a_dead_pools_job_fails(storage: Storage) -> None:
    workers = registry(storage)
    workers.register_worker(pool("dead"), now=T0)
    storage.enqueue(NewJob("t", "[]", max_attempts=1), now=T0)
    [job_id] = _claim(storage, "web1:100:dead", 1)
    [info] = workers.live_workers(now=T0)
    rescued = workers.release_owner("web1:100:dead", started_at=info.started_at, now=T0 + 5)
    assert rescued.failed == (job_id,)
    job = storage.get(job_id)
    assert job is not None
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.type == "WorkerDied"
    # The attempt is kept in the job's history and its end counted, as a rescue's is.
    assert isinstance(storage, JobHistory)
    [attempt] = storage.job_attempts(job_id)
    assert (attempt.outcome, attempt.lease_owner, attempt.ended_at) == (
        "worker_died",
        "web1:100:dead",
        T0 + 5,
    )
    assert attempt.error is not None
    assert attempt.error.type == "WorkerDied"
    [point] = storage.throughput(since=T0 - T0 % 60, until=T0 - T0 % 60 + 60)
    assert (point.completed, point.failed) == (0, 1)


def test_release_owner_needs_the_row_registered_at_that_time(storage: Storage) -> None:
    """A new process with the same owner (its pid reused, same pool name) registered
    again: what was read about the dead one must not release the new one's jobs."""
    workers = registry(storage)
    workers.register_worker(pool("p"), now=T0)
    [old] = workers.live_workers(now=T0)
    workers.register_worker(pool("p"), now=T0 + 50)  # the new process, same owner
    storage.enqueue(NewJob("t", "[]"), now=T0)
    [job_id] = _claim(storage, "web1:100:p", 1, now=T0 + 51)
    rescued = workers.release_owner("web1:100:p", started_at=old.started_at, now=T0 + 52)
    assert rescued.total == 0
    job = storage.get(job_id)
    assert job is not None
    assert job.status is JobStatus.PROCESSING
    assert [w.started_at for w in workers.live_workers(now=T0 + 52)] == [T0 + 50]


def test_release_owner_leaves_jobs_another_owner_took_over(storage: Storage) -> None:
    workers = registry(storage)
    workers.register_worker(pool("dead"), now=T0)
    storage.enqueue(NewJob("t", "[]"), now=T0)
    [job_id] = _claim(storage, "web1:100:dead", 1)
    # Its lease expired and was rescued; another pool now runs it.
    short = storage.rescue_expired(now=T0 + LEASE + 1)
    assert short.requeued == (job_id,)
    [taken] = storage.claim(
        ["default"], owner="web9:1:other", now=T0 + LEASE + 2, lease_seconds=LEASE
    )
    [info] = workers.live_workers(now=T0, max_age=1e6)
    rescued = workers.release_owner("web1:100:dead", started_at=info.started_at, now=T0 + LEASE + 3)
    assert rescued.total == 0
    job = storage.get(taken.id)
    assert job is not None
    assert job.status is JobStatus.PROCESSING
    assert job.lease_owner == "web9:1:other"


def test_bad_arguments_are_refused(storage: Storage) -> None:
    workers = registry(storage)
    with pytest.raises(TypeError, match="owner"):
        workers.release_owner("", started_at=T0, now=T0)
    with pytest.raises(ValueError, match="started_at"):
        workers.release_owner("h:1:p", started_at=float("nan"), now=T0)
    with pytest.raises(TypeError, match="boot_id"):
        workers.host_workers("h", boot_id="", pid_namespace=NS)
    with pytest.raises(ValueError, match="pid_namespace"):
        workers.host_workers("h", boot_id=BOOT, pid_namespace=-1)
    with pytest.raises(TypeError, match="threads"):
        workers.worker_seen("h:1:p", now=T0, threads=[{"job_id": 1}])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="process_start"):
        workers.register_worker(
            NewWorker("h:1:p", "h", 1, "p", (), 1, LEASE, process_start=-5), now=T0
        )
