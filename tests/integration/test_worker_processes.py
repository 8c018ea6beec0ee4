"""Multi-process promises of DurableQueue, with real processes on one real SQLite file
(and, for the tests that take ``database`` as a parameter, on one PostgreSQL schema,
and for some of them on one Redis key prefix).

Children run ``tests/integration/_worker_process.py`` in fresh interpreters, each in
its own session (so a kill takes down anything it forked). They talk to the test
through files in ``tmp_path``; every wait has a deadline, and every child is killed
and reaped when the test ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobq import DurableQueue, JobStatus
from tests.helpers import both_backends, open_location, three_backends, wait_for
from tests.integration._worker_process import (
    read_ledgers,
    read_sweeps,
    register_limited_tasks,
    register_tasks,
)

HELPER = str(Path(__file__).with_name("_worker_process.py"))
DEADLINE = 30.0  # real seconds any one step may take on a busy shared machine


class Children:
    """Child processes of one test: started with a config, always killed and reaped."""

    def __init__(self, folder: Path, db: str) -> None:
        self.folder = folder
        self.db = db
        self.started: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}

    def start(self, mode: str, name: str, **config: Any) -> subprocess.Popen[bytes]:
        config = {"mode": mode, "name": name, "dir": str(self.folder), "db": str(self.db), **config}
        log = self.folder / f"{name}-{len(self.started)}.log"
        with open(log, "wb") as output:
            child = subprocess.Popen(
                [sys.executable, HELPER, json.dumps(config)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append(child)
        self.logs[child.pid] = log
        return child

    def start_workers(self, name: str, **config: Any) -> subprocess.Popen[bytes]:
        """Start a worker process and wait until its pool runs."""
        child = self.start("workers", name, **config)
        self.wait_ready(name, child)
        return child

    def wait_ready(self, name: str, child: subprocess.Popen[bytes]) -> None:
        wait_for(lambda: self.exited(child) or self.ready(name, child.pid), f"worker {name} ready")
        assert not self.exited(child), self.output(child)

    def ready(self, name: str, pid: int) -> bool:
        return (self.folder / f"ready-{name}-{pid}").exists()

    @staticmethod
    def exited(child: subprocess.Popen[bytes]) -> bool:
        """Whether the child has ended, without reaping it (its process group stays
        ours to kill until it is reaped)."""
        if child.returncode is not None:
            return True
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, child.pid, flags) is not None

    def output(self, child: subprocess.Popen[bytes]) -> str:
        return self.logs[child.pid].read_text(errors="replace")

    def reap(self, child: subprocess.Popen[bytes]) -> int:
        """Kill whatever is left of the child's process group, then reap the child."""
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=DEADLINE)
        return child.returncode

    def finish(self, child: subprocess.Popen[bytes], timeout: float = DEADLINE) -> int:
        """Wait (bounded) for the child to exit on its own; return its exit code."""
        wait_for(lambda: self.exited(child), f"exit of {self.logs[child.pid].name}", timeout)
        return self.reap(child)

    def stop_workers(self, *workers: subprocess.Popen[bytes]) -> None:
        """Ask worker processes to stop; assert that they exited cleanly (0)."""
        (self.folder / "stop").touch()
        for child in workers:
            code = self.finish(child)
            assert code == 0, f"worker exited with {code}:\n{self.output(child)}"

    def kill_all(self) -> None:
        for child in self.started:
            self.reap(child)


@pytest.fixture
def children(tmp_path: Path, database: str) -> Iterator[Children]:
    procs = Children(tmp_path, database)
    try:
        yield procs
    finally:
        procs.kill_all()


@pytest.fixture
def queue(tmp_path: Path, database: str) -> Iterator[DurableQueue]:
    """The test's own view of the database (it never starts workers)."""
    q = DurableQueue(open_location(database), lease_seconds=30.0)
    register_tasks(q, {"dir": str(tmp_path)})
    try:
        yield q
    finally:
        q.close()


def counts(queue: DurableQueue) -> Counter[JobStatus]:
    total: Counter[JobStatus] = Counter()
    for per_queue in queue.stats().queues.values():
        total.update(per_queue.counts)
    return total


def finished(queue: DurableQueue) -> int:
    """How many jobs are in a final status."""
    total = counts(queue)
    return sum(n for status, n in total.items() if status.is_final)


def integrity(db: str) -> list[str]:
    """SQLite's integrity check of the file; PostgreSQL has nothing to compare."""
    if "://" in db:
        return ["ok"]
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return [row[0] for row in conn.execute("PRAGMA integrity_check")]


def all_jobs(queue: DurableQueue) -> list[Any]:
    jobs = queue.list(limit=10_000)
    assert len(jobs) < 10_000
    return jobs


# -- 1. several processes, each job exactly once -------------------------------------


@pytest.mark.slow
@three_backends
def test_processes_share_one_database_and_run_each_job_exactly_once(
    children: Children, queue: DurableQueue, tmp_path: Path, database: str
) -> None:
    record = queue.get_task("record")
    upfront = record.enqueue_many([(n,) for n in range(600)])
    # About 2 s of work for 6 threads, so that the late jobs arrive while they run.
    workers = [
        children.start("workers", f"w{i}", concurrency=2, lease=10.0, job_sleep=0.02)
        for i in range(3)
    ]
    # Yet another process enqueues meanwhile: only polling can tell the workers.
    enqueuer = children.start("enqueue", "late", count=150, gap=0.005)
    for i, child in enumerate(workers):
        children.wait_ready(f"w{i}", child)
    assert children.finish(enqueuer) == 0, children.output(enqueuer)
    late = json.loads((tmp_path / "ids-late.json").read_text())
    expected = sorted(upfront + late)
    assert len(set(expected)) == 750

    wait_for(lambda: finished(queue) == 750, "750 jobs finished")
    children.stop_workers(*workers)

    runs = [(job_id, pid) for event, job_id, pid, _, _ in read_ledgers(tmp_path) if event == "run"]
    per_job = Counter(job_id for job_id, _ in runs)
    duplicates = {job_id: n for job_id, n in per_job.items() if n != 1}
    assert duplicates == {}, f"jobs run more than once: {duplicates}"
    assert sorted(per_job) == expected
    jobs = all_jobs(queue)
    assert sorted(job.id for job in jobs) == expected
    assert {job.status for job in jobs} == {JobStatus.COMPLETED}
    assert {job.attempts for job in jobs} == {1}
    last_upfront_done = max(job.finished_at or 0.0 for job in jobs if job.id in set(upfront))
    assert min(job.created_at for job in jobs if job.id in set(late)) < last_upfront_done, (
        "the late jobs were not enqueued while the workers were busy"
    )
    worker_pids = {child.pid for child in workers}
    per_process = Counter(pid for _, pid in runs)
    assert set(per_process) <= worker_pids
    assert len(per_process) >= 2, f"the work was not shared: {per_process}"
    assert integrity(database) == ["ok"]


# -- 2. kill -9 mid-job ---------------------------------------------------------------


@pytest.mark.slow
@three_backends
def test_job_of_a_killed_process_is_rescued_by_another_within_lease_and_sweep(
    children: Children, queue: DurableQueue, tmp_path: Path
) -> None:
    lease = 1.0
    sweep_interval = min(lease / 2, 10.0)  # LeaseRescuer.interval
    documented = lease + sweep_interval + 1.0

    job = queue.enqueue("hang")
    a = children.start_workers("A", concurrency=1, lease=lease, block=True)

    def started_in(pid: int) -> list[tuple[str, int, int, int, float]]:
        return [e for e in read_ledgers(tmp_path) if e[0] == "start" and e[2] == pid]

    wait_for(lambda: bool(started_in(a.pid)), "A started the job")
    held_until = queue.get(job.id).lease_expires_at
    assert held_until is not None
    b = children.start_workers("B", concurrency=1, lease=lease, block=False)
    # A keeps renewing its lease meanwhile: B must not take the job. Wait until A has
    # pushed its lease past `held_until` twice and B has finished a rescue sweep that
    # began after `held_until`: had A stopped renewing, that sweep released the job.
    renewed_to: set[float] = set()

    def renewed_twice_and_swept() -> bool:
        expires = queue.get(job.id).lease_expires_at
        if expires is not None and expires > held_until:
            renewed_to.add(expires)
        late_sweeps = [s for s in read_sweeps(tmp_path, b.pid) if s[0] > held_until]
        return len(renewed_to) >= 2 and bool(late_sweeps)

    wait_for(renewed_twice_and_swept, "A renewed its lease twice and B swept after it")
    assert not any(job.id in ids for _, _, ids in read_sweeps(tmp_path, b.pid))
    assert not started_in(b.pid), "B took the job while A was alive and renewing its lease"
    assert queue.get(job.id).status is JobStatus.PROCESSING

    killed_at = time.time()
    os.kill(a.pid, signal.SIGKILL)
    assert children.finish(a, timeout=10.0) == -signal.SIGKILL
    wait_for(lambda: queue.get(job.id).status is JobStatus.COMPLETED, "B completed the job")
    children.stop_workers(b)

    ledger = read_ledgers(tmp_path)
    assert [(e[0], e[2], e[3]) for e in ledger if e[1] == job.id] == [
        ("start", a.pid, 1),
        ("start", b.pid, 2),
        ("done", b.pid, 2),
    ]  # A never finished it; B ran it as the second attempt
    done = queue.get(job.id)
    assert done.attempts == 2
    assert f":{b.pid}:" in (done.lease_owner or "")
    assert done.error is not None
    # Kept from the rescue: B, on the same host, saw A's pid gone (WorkerDied),
    # unless A's lease lapsed first (LeaseExpired).
    assert done.error.type in {"WorkerDied", "LeaseExpired"}
    rescue_delay = started_in(b.pid)[0][4] - killed_at
    print(f"rescued {rescue_delay:.2f} s after kill -9 (documented bound {documented:.1f} s)")
    assert 0 < rescue_delay <= 2 * documented, rescue_delay


@pytest.mark.slow
@three_backends
def test_a_job_that_kills_its_worker_ends_failed_and_others_still_complete(
    children: Children, queue: DurableQueue, tmp_path: Path
) -> None:
    poison = queue.enqueue("poison")  # max_attempts=2
    ordinary = queue.get_task("record").options(max_attempts=5).enqueue(7)
    deaths: list[int] = []
    worker = children.start("workers", "sup", concurrency=1, lease=1.0)

    def settled() -> bool:
        nonlocal worker
        if children.exited(worker):  # the supervisor: restart a dead worker
            deaths.append(children.reap(worker))
            assert len(deaths) <= 2, f"the poison job killed its worker {len(deaths)} times"
            worker = children.start("workers", "sup", concurrency=1, lease=1.0)
        return (
            queue.get(poison.id).status is JobStatus.FAILED
            and queue.get(ordinary.id).status is JobStatus.COMPLETED
        )

    failed_at = wait_for(settled, "poison job failed and ordinary job completed", timeout=45.0)
    wait_for(
        lambda: children.ready("sup", worker.pid) or children.exited(worker),
        "the last worker ready",
    )
    # The last worker must stay alive: the poison job is not run again. Wait until it
    # has claimed and run a job enqueued now, and finished a rescue sweep begun after
    # the poison job failed: each would have handed it the poison job, were it runnable.
    after = queue.get_task("record").enqueue(8)
    wait_for(
        lambda: (
            children.exited(worker)
            or (
                queue.get(after.id).status is JobStatus.COMPLETED
                and any(began > failed_at for began, _, _ in read_sweeps(tmp_path, worker.pid))
            )
        ),
        "the last worker ran a job and swept after the poison job failed",
    )
    children.stop_workers(worker)

    assert deaths == [-signal.SIGKILL] * 2
    failed = queue.get(poison.id)
    assert failed.attempts == 2
    assert failed.error is not None
    # Released by the restarted worker, which saw the killed pid gone (WorkerDied),
    # or by lease expiry (LeaseExpired) if that came first.
    assert failed.error.type in {"WorkerDied", "LeaseExpired"}
    assert "died" in failed.error.message
    starts = [(e[2], e[3]) for e in read_ledgers(tmp_path) if e[0] == "start"]
    assert [attempt for _, attempt in starts] == [1, 2]
    assert len({pid for pid, _ in starts}) == 2  # in two different processes
    assert queue.get(ordinary.id).decoded_result() == 7


# -- 3. no "database is locked" reaches a caller --------------------------------------


@pytest.mark.slow
def test_no_database_is_locked_under_concurrent_writers_and_readers(
    children: Children, queue: DurableQueue, tmp_path: Path, database: str
) -> None:
    workers = [children.start_workers(f"w{i}", concurrency=2, lease=30.0) for i in range(3)]
    enqueuer = children.start("enqueue", "fast", duration=5.0)
    reader = children.start("stats", "reader", duration=5.0)
    failures = {}
    for child in (enqueuer, reader):
        code = children.finish(child)
        if code != 0:
            failures[children.logs[child.pid].name] = children.output(child)
    assert failures == {}, failures
    ids = json.loads((tmp_path / "ids-fast.json").read_text())
    reads = json.loads((tmp_path / "stats-reader.json").read_text())["reads"]
    assert len(ids) > 500, "the enqueuer hardly ran"
    assert reads > 20, "the stats reader hardly ran"

    wait_for(lambda: finished(queue) == len(ids), "every job finished", timeout=45.0)
    for child in workers:  # a pool logs (then retries) a failed database operation
        (tmp_path / "stop").touch()
        code = children.finish(child)
        if code != 0:
            failures[children.logs[child.pid].name] = children.output(child)
    assert failures == {}, failures
    outputs = "".join(children.output(child) for child in children.started)
    assert "locked" not in outputs
    assert "OperationalError" not in outputs
    assert "StorageError" not in outputs
    assert counts(queue) == Counter({JobStatus.COMPLETED: len(ids)})
    runs = Counter(e[1] for e in read_ledgers(tmp_path) if e[0] == "run")
    assert sorted(runs) == sorted(ids)
    assert set(runs.values()) == {1}
    assert integrity(database) == ["ok"]


# -- 4. fork safety ---------------------------------------------------------------------


def open_after(database: str, tmp_path: Path) -> DurableQueue:
    """The test's view of the database, opened only once the children are done (an
    open connection in this process would hold locks that can hide a fork bug)."""
    queue = DurableQueue(database)
    register_tasks(queue, {"dir": str(tmp_path)})
    return queue


@both_backends
def test_a_forked_child_uses_the_inherited_queue_safely(
    children: Children, tmp_path: Path, database: str
) -> None:
    child = children.start("fork", "fork")
    code = children.finish(child, timeout=60.0)
    assert code == 0, children.output(child)
    result = json.loads((tmp_path / "fork-result.json").read_text())
    assert result["problems"] == [], "\n".join(result["problems"])
    assert result["integrity"] == ["ok"]
    assert integrity(database) == ["ok"]
    with contextlib.closing(open_after(database, tmp_path)) as queue:
        check_fork_jobs(queue, tmp_path, result)


def check_fork_jobs(queue: DurableQueue, tmp_path: Path, result: dict[str, Any]) -> None:
    """Each side ran exactly its own queue's jobs, each once; nothing was lost."""
    by_queue: dict[str, Counter[JobStatus]] = {}
    for job in all_jobs(queue):
        by_queue.setdefault(job.queue, Counter())[job.status] += 1
    assert by_queue == {
        "before": Counter({JobStatus.COMPLETED: 1}),
        "child": Counter({JobStatus.COMPLETED: 101}),
        "parent": Counter({JobStatus.COMPLETED: 100}),
        "after": Counter({JobStatus.COMPLETED: 1}),
    }
    runs = [(e[1], e[2]) for e in read_ledgers(tmp_path) if e[0] == "run"]
    assert len(runs) == len({job_id for job_id, _ in runs}) == 203
    child_jobs = {job.id for job in queue.list(queue="child", limit=1000)}
    assert {pid for job_id, pid in runs if job_id in child_jobs} == {result["child"]}
    assert {pid for job_id, pid in runs if job_id not in child_jobs} == {result["parent"]}


@both_backends
def test_jobs_a_forked_child_enqueues_survive_the_parent_closing_the_queue(
    children: Children, tmp_path: Path, database: str
) -> None:
    # The parent opened the file, forked, and closed its queue while the forked
    # child went on enqueueing through the inherited object. Every enqueue the
    # child made returned a committed job id; every one must be in the file.
    child = children.start("fork-outlive", "outlive")
    code = children.finish(child)
    assert code == 0, children.output(child)
    parent = json.loads((tmp_path / "parent-ids.json").read_text())
    assert parent["child_exit"] == 0, children.output(child)
    accepted = parent["ids"] + json.loads((tmp_path / "child-ids.json").read_text())
    assert len(accepted) == 52
    assert integrity(database) == ["ok"]
    with contextlib.closing(open_after(database, tmp_path)) as queue:
        stored = {job.id for job in all_jobs(queue)}
    lost = sorted(set(accepted) - stored)
    assert lost == [], f"{len(lost)} accepted jobs are not in the database: {lost}"


# -- 5. schedules and limits across processes ---------------------------------------------


@pytest.mark.slow
@three_backends
def test_schedules_fire_once_and_limits_hold_across_four_processes(
    children: Children, queue: DurableQueue, tmp_path: Path, database: str
) -> None:
    register_limited_tasks(queue, {"dir": str(tmp_path)})
    reports = [queue.enqueue("report").id for _ in range(16)]
    hooks = queue.get_task("webhook").enqueue_many([()] * 15)
    began = time.time()
    workers = [
        children.start("workers", f"w{i}", concurrency=4, lease=30.0, limited=True)
        for i in range(4)
    ]
    for i, child in enumerate(workers):
        children.wait_ready(f"w{i}", child)
    wanted = set(reports) | set(hooks)
    wait_for(
        lambda: {j.id for j in all_jobs(queue) if j.status is JobStatus.COMPLETED} >= wanted,
        "the limited jobs finished",
        timeout=45.0,
    )
    wait_for(lambda: time.time() - began > 4.5, "several fire times passed")
    children.stop_workers(*workers)
    ledger = read_ledgers(tmp_path)

    # Concurrency: never more than 2 reports running at once, in all four processes.
    events = sorted(
        (when, +1 if event == "start" else -1)
        for event, job_id, _, _, when in ledger
        if job_id in set(reports)
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 2, f"peak of concurrent reports: {peak}"

    # Rate: at most 5 webhook starts in any 1 s window (claim times, as stored).
    starts = sorted(job.started_at or 0.0 for job in all_jobs(queue) if job.id in set(hooks))
    for index, start in enumerate(starts):
        in_window = [s for s in starts[index:] if s < start + 1.0]
        assert len(in_window) <= 5, f"{len(in_window)} starts within 1 s from {start}"
    assert starts[-1] - starts[0] >= 2.0  # 15 jobs at 5 per second take three windows

    # Schedule: every fire time became one job, whoever fired it. A fire made late
    # (a loaded machine) enqueues every fire time it covers in one transaction, so
    # its jobs share a created_at, and the next fire may follow it closely, but in
    # a later second (fire times are whole seconds). Two processes firing one time
    # would be two transactions close together in one second, and more jobs than
    # fire times.
    ticks = sorted(job.created_at for job in all_jobs(queue) if job.name == "tick")
    assert len(ticks) >= 3, ticks
    fires = sorted(set(ticks))
    gaps = [later - earlier for earlier, later in itertools.pairwise(fires)]
    doubled = [
        (earlier, later)
        for earlier, later in itertools.pairwise(fires)
        if math.floor(later) == math.floor(earlier) and later - earlier < 0.5
    ]
    assert doubled == [], f"two fires for one fire time: {doubled}"
    fire_times = math.floor(fires[-1]) - math.floor(began) + 2  # whole seconds since declared
    assert len(ticks) <= fire_times, f"more jobs than fire times: {ticks}"
    [info] = queue.schedules()
    assert info.last_job_id == max(j.id for j in all_jobs(queue) if j.name == "tick")
    busiest = max(sum(1 for s in starts if start <= s < start + 1.0) for start in starts)
    print(
        f"4 processes: peak {peak} reports at once (limit 2); at most {busiest} webhook "
        f"starts in any 1 s (limit 5); {len(ticks)} fires in {time.time() - began:.1f} s, "
        f"closest two {min(gaps):.2f} s apart"
    )
