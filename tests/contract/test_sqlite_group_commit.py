"""Group commit on SQLite: threads enqueueing at the same moment share one
transaction, each gets its own job (or its own error), and none returns before
the commit holding its job. Real threads, real files, a real killed process."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from jobq.job import JobStatus
from jobq.storage import SQLiteStorage
from jobq.storage.base import Enqueued, NewJob, StorageError

T0 = 1_000_000.0


@pytest.fixture(params=["sqlite3", "apsw"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def raw_connection(path: Path, driver: str) -> Any:
    """A second connection to the file, on the storage's own SQLite library."""
    if driver == "apsw":
        import apsw

        return apsw.Connection(str(path))
    return sqlite3.connect(path, isolation_level=None)


@contextmanager
def write_lock_held(path: Path, driver: str) -> Iterator[None]:
    conn = raw_connection(path, driver)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("COMMIT")
        conn.close()


def wait_until(condition: Callable[[], bool], timeout: float = 4.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def enqueue_in_threads(
    storage: SQLiteStorage, jobs: list[NewJob], hold: Callable[[], Any] | None = None
) -> list[Enqueued | BaseException]:
    """Enqueue each job from a thread of its own, all at once; with ``hold``, the
    write lock is held (by another connection) until every thread but the first
    is queued behind the first, so they commit as one group."""
    outcomes: list[Enqueued | BaseException | None] = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def run(index: int) -> None:
        if hold is None:
            start.wait()
        try:
            outcomes[index] = storage.enqueue(jobs[index], now=T0)
        except BaseException as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    if hold is None:
        for thread in threads:
            thread.start()
    else:
        with hold():
            threads[0].start()
            wait_until(lambda: storage._db.conn() is not None and threads[0].is_alive())
            wait_until(lambda: group(storage).queued == 0 and group(storage)._busy)
            for thread in threads[1:]:
                thread.start()
            wait_until(lambda: group(storage).queued == len(jobs) - 1)
    for thread in threads:
        thread.join(10)
    assert all(outcome is not None for outcome in outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


def group(storage: SQLiteStorage) -> Any:
    return storage._inserts.group  # type: ignore[attr-defined]


def stored_payloads(storage: SQLiteStorage) -> dict[int, str]:
    rows = storage._db.query("SELECT id, payload FROM jobs")
    return {int(i): str(p) for i, p in rows}


def test_each_caller_gets_its_own_job_from_one_shared_commit(tmp_path: Path, driver: str) -> None:
    path = tmp_path / "a.db"
    with SQLiteStorage(path, driver=driver, synchronous="FULL") as storage:
        jobs = [
            NewJob(
                f"t{i % 2}",
                f"[{i}]",
                queue=f"q{i % 3}",
                priority=i,
                max_attempts=i + 1,
                run_at=None if i % 4 else T0 + i,
                unique_key=f"k{i}" if i % 5 == 0 else None,
            )
            for i in range(12)
        ]
        outcomes = enqueue_in_threads(storage, jobs, lambda: write_lock_held(path, driver))
        assert group(storage).largest == 11  # all but the first, in one transaction
        assert all(isinstance(o, Enqueued) and o.created for o in outcomes)
        enqueued = [o for o in outcomes if isinstance(o, Enqueued)]
        for job, e in zip(jobs, enqueued, strict=True):
            got = e.job
            assert (got.name, got.payload, got.queue, got.priority) == job[:4]
            assert (got.max_attempts, got.unique_key) == (job.max_attempts, job.unique_key)
            assert got.run_at == (T0 if job.run_at is None else job.run_at)
            assert storage.get(got.id) == got
        assert len({e.job.id for e in enqueued}) == 12
        assert stored_payloads(storage) == {e.job.id: e.job.payload for e in enqueued}


def test_many_threads_at_once_each_get_their_job(tmp_path: Path, driver: str) -> None:
    with SQLiteStorage(tmp_path / "a.db", driver=driver) as storage:
        jobs = [NewJob("t", f"[{i}]", priority=i % 3) for i in range(40)]
        outcomes = enqueue_in_threads(storage, jobs)
        enqueued = [o for o in outcomes if isinstance(o, Enqueued)]
        assert [e.job.payload for e in enqueued] == [j.payload for j in jobs]
        assert [e.job.priority for e in enqueued] == [j.priority for j in jobs]
        assert stored_payloads(storage) == {e.job.id: e.job.payload for e in enqueued}
        assert storage.stats(now=T0).queues["default"].counts[JobStatus.PENDING] == 40


def test_a_refused_job_fails_only_its_own_caller(tmp_path: Path, driver: str) -> None:
    path = tmp_path / "a.db"
    with SQLiteStorage(path, driver=driver) as storage:
        storage._db.conn().run(
            "CREATE TRIGGER refuse BEFORE INSERT ON jobs WHEN NEW.payload = '\"boom\"' "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
        jobs = [NewJob("t", '"boom"' if i in (3, 7) else f"[{i}]") for i in range(10)]
        outcomes = enqueue_in_threads(storage, jobs, lambda: write_lock_held(path, driver))
        assert group(storage).largest == 9
        for index, outcome in enumerate(outcomes):
            if index in (3, 7):
                assert isinstance(outcome, StorageError)
                assert "refused by the test" in str(outcome)
            else:
                assert isinstance(outcome, Enqueued), outcome
        kept = {o.job.id: o.job.payload for o in outcomes if isinstance(o, Enqueued)}
        assert stored_payloads(storage) == kept
        assert len(kept) == 8


def test_a_lone_caller_commits_alone_at_once(tmp_path: Path, driver: str) -> None:
    with SQLiteStorage(tmp_path / "a.db", driver=driver) as storage:
        for i in range(5):
            storage.enqueue(NewJob("t", f"[{i}]"), now=T0)
        assert (group(storage).commits, group(storage).largest) == (5, 1)
        assert not group(storage)._busy


@pytest.mark.parametrize("grouped", [True, False])
def test_unique_keys_under_concurrency(tmp_path: Path, driver: str, grouped: bool) -> None:
    path = tmp_path / "a.db"
    with SQLiteStorage(path, driver=driver) as storage:
        jobs = [NewJob("t", f"[{i}]", unique_key=f"k{i % 3}") for i in range(15)]
        jobs.append(NewJob("other", "[]", unique_key="k0"))  # another task's key space
        hold = (lambda: write_lock_held(path, driver)) if grouped else None
        outcomes = enqueue_in_threads(storage, jobs, hold)
        enqueued = [o for o in outcomes if isinstance(o, Enqueued)]
        assert len(enqueued) == 16
        for key in ("k0", "k1", "k2"):
            mine = [e for e in enqueued if e.job.unique_key == key and e.job.name == "t"]
            assert len({e.job.id for e in mine}) == 1
            assert sum(e.created for e in mine) == 1
        assert len(stored_payloads(storage)) == 4


def test_replacing_enqueues_in_one_group_leave_one_job(tmp_path: Path, driver: str) -> None:
    path = tmp_path / "a.db"
    with SQLiteStorage(path, driver=driver) as storage:
        jobs = [
            NewJob("t", f"[{i}]", run_at=T0 + i, unique_key="k", on_duplicate="replace")
            for i in range(10)
        ]
        outcomes = enqueue_in_threads(storage, jobs, lambda: write_lock_held(path, driver))
        assert group(storage).largest == 9
        enqueued = [o for o in outcomes if isinstance(o, Enqueued)]
        assert len(enqueued) == 10
        assert [(e.created, e.replaced) for e in enqueued].count((True, False)) == 1
        assert [(e.created, e.replaced) for e in enqueued].count((False, True)) == 9
        for job, e in zip(jobs, enqueued, strict=True):  # each saw its own write
            assert (e.job.payload, e.job.run_at) == (job.payload, job.run_at)
        [(job_id, payload)] = stored_payloads(storage).items()
        assert {e.job.id for e in enqueued} == {job_id}
        assert payload in {job.payload for job in jobs}


def test_the_whole_group_fails_when_its_transaction_cannot_start(
    tmp_path: Path, driver: str
) -> None:
    path = tmp_path / "a.db"
    with SQLiteStorage(path, driver=driver, busy_timeout=0.05) as storage:
        storage.enqueue(NewJob("t", "[]"), now=T0)  # the connection exists
        with write_lock_held(path, driver):
            outcomes = enqueue_in_threads(storage, [NewJob("t", f"[{i}]") for i in range(6)])
        assert all(isinstance(o, StorageError) for o in outcomes)
        assert len(stored_payloads(storage)) == 1
        assert not group(storage)._busy
        assert group(storage).queued == 0


CHILD = """
import sys, threading
from jobq.job import JobStatus
from jobq.storage import SQLiteStorage
from jobq.storage.base import NewJob
storage = SQLiteStorage(sys.argv[1], driver=sys.argv[2], synchronous="FULL")
lock = threading.Lock()
def run(thread):
    for i in range(100000):
        job = storage.enqueue(NewJob("t", f"[{thread}, {i}]"), now=1.0).job
        with lock:
            sys.stdout.write(f"{job.id} {job.payload}\\n")
            sys.stdout.flush()
for t in range(int(sys.argv[3])):
    threading.Thread(target=run, args=(t,)).start()
"""


@pytest.mark.parametrize("threads", [1, 6])
def test_an_acknowledged_job_survives_a_killed_process(
    tmp_path: Path, driver: str, threads: int
) -> None:
    path = tmp_path / "a.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), driver, str(threads)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    acknowledged: dict[int, str] = {}
    try:
        while len(acknowledged) < 300:
            line = child.stdout.readline()
            assert line, "the child stopped early"
            job_id, payload = line.split(" ", 1)
            acknowledged[int(job_id)] = payload.strip()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    with SQLiteStorage(path, driver=driver) as storage:
        stored = stored_payloads(storage)
    assert {i: stored.get(i) for i in acknowledged} == acknowledged
