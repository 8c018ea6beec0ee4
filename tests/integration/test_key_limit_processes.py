"""Per-key concurrency across four real worker processes, on one SQLite file, on one
PostgreSQL schema and on one Redis key prefix: at most one job per account runs at
any moment, while the jobs of several accounts run side by side (the helpers of
test_worker_processes.py start, stop and reap the children)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq import DurableQueue, JobStatus
from tests.helpers import open_location, three_backends, wait_for
from tests.integration._worker_process import read_ledgers, register_limited_tasks, register_tasks
from tests.integration.test_worker_processes import Children, all_jobs


@pytest.fixture
def children(tmp_path: Path, database: str) -> Iterator[Children]:
    procs = Children(tmp_path, database)
    try:
        yield procs
    finally:
        procs.kill_all()


@pytest.fixture
def queue(tmp_path: Path, database: str) -> Iterator[DurableQueue]:
    q = DurableQueue(open_location(database), lease_seconds=30.0)
    register_tasks(q, {"dir": str(tmp_path)})
    register_limited_tasks(q, {"dir": str(tmp_path)})
    try:
        yield q
    finally:
        q.close()


def peak(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment (an end before a start at a tie)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


@pytest.mark.slow
@three_backends
def test_one_job_per_account_runs_at_a_time_across_four_processes(
    children: Children, queue: DurableQueue, tmp_path: Path
) -> None:
    sync = queue.get_task("sync")
    # Account a0's jobs come first: the others must not wait behind them.
    ids = sync.enqueue_many([("a0",)] * 12 + [(f"a{n % 3 + 1}",) for n in range(24)])
    workers = [
        children.start("workers", f"w{i}", concurrency=4, lease=30.0, limited=True)
        for i in range(4)
    ]
    for i, child in enumerate(workers):
        children.wait_ready(f"w{i}", child)
    wait_for(
        lambda: all(j.status is JobStatus.COMPLETED for j in all_jobs(queue) if j.id in set(ids)),
        "the sync jobs finished",
        timeout=60.0,
    )
    children.stop_workers(*workers)

    account = {job.id: job.limit_key for job in all_jobs(queue) if job.id in set(ids)}
    assert sorted(set(account.values())) == ["a0", "a1", "a2", "a3"]
    opened: dict[int, float] = {}
    runs: dict[str, list[tuple[float, float]]] = {key: [] for key in ("a0", "a1", "a2", "a3")}
    pids: set[int] = set()
    for event, job_id, pid, _, when in read_ledgers(tmp_path):
        if job_id not in account:
            continue
        if event == "start":
            opened[job_id] = when
            pids.add(pid)
        else:
            runs[account[job_id]].append((opened.pop(job_id), when))
    assert opened == {}
    assert sum(len(r) for r in runs.values()) == len(ids)  # each job ran once
    per_account = {key: peak(r) for key, r in runs.items()}
    assert per_account == {"a0": 1, "a1": 1, "a2": 1, "a3": 1}, per_account
    together = peak([run for r in runs.values() for run in r])
    assert together >= 2, "the accounts never ran side by side"
    first_other = min(start for key in ("a1", "a2", "a3") for start, _ in runs[key])
    last_a0 = max(start for start, _ in runs["a0"])
    assert first_other < last_a0, "the other accounts waited behind a0's jobs"
    print(
        f"4 processes ({len(pids)} ran sync jobs): at most {together} accounts at once, "
        f"one job per account at a time: {per_account}"
    )
