"""What ``isolation="process"`` costs per job against the default thread mode.

Run from the repository root::

    python benchmarks/bench_isolation.py            # about 1 minute
    python benchmarks/bench_isolation.py --quick    # a few seconds

Two workloads, each with a no-op task declared twice (``isolation="thread"`` and
``isolation="process"``), with warm children (one warm-up round first):

- **attempt round trip**: one attempt of an already claimed job, without the
  database: :func:`jobq.worker.execute.execute` in this thread against
  ``Children.execute`` (the job's fields to a child as JSON, the task run there,
  the outcome back as JSON). The pure cost of crossing to a child and back.
- **pool of N threads**: ``jobs`` no-op jobs bulk-enqueued on SQLite, then
  ``start_workers(concurrency=N)``; seconds until every job is recorded completed,
  as milliseconds per job. The difference is the overhead a user sees.

Figures are medians of the rounds; the "overhead" column is process minus thread.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jobq
from jobq.worker.execute import execute, new_context
from jobq.worker.isolation import Children


def make_queue(path: Path) -> tuple[jobq.DurableQueue, jobq.Task[[], None], jobq.Task[[], None]]:
    queue = jobq.DurableQueue(str(path))

    @queue.task("noop-thread")
    def noop_thread() -> None:
        return None

    @queue.task("noop-process", isolation="process")
    def noop_process() -> None:
        return None

    return queue, noop_thread, noop_process


def round_trip(folder: Path, attempts: int) -> tuple[float, float]:
    """Microseconds per attempt: in this thread, in a warm child."""
    queue, thread_task, process_task = make_queue(folder / "trip.db")
    try:
        thread_job = thread_task.enqueue()
        process_job = process_task.enqueue()
        claimed = queue.storage.claim(
            ["default"], owner="bench", now=time.time(), lease_seconds=600, limit=2
        )
        by_id = {job.id: job for job in claimed}
        children = Children(queue, "bench")
        children.start()
        try:
            times = []
            for job, run in ((by_id[thread_job.id], execute), (by_id[process_job.id], None)):
                context = new_context(queue, job)
                call = run or children.execute
                call(queue, job, context)  # warm: the child is forked here
                began = time.perf_counter()
                for _ in range(attempts):
                    outcome = call(queue, job, context)
                    assert outcome.kind == "completed", outcome
                times.append((time.perf_counter() - began) / attempts * 1e6)
        finally:
            children.close()
        return times[0], times[1]
    finally:
        queue.close()


def pool_run(folder: Path, name: str, jobs: int, threads: int, isolation: str) -> float:
    """Milliseconds per job for ``jobs`` no-op jobs through a pool of ``threads``."""
    queue, thread_task, process_task = make_queue(folder / f"{name}.db")
    try:
        task = process_task if isolation == "process" else thread_task
        task.enqueue_many([() for _ in range(8)])
        pool = queue.start_workers(concurrency=threads)  # warm: children forked
        try:
            wait_empty(queue)
            task.enqueue_many([() for _ in range(jobs)])
            began = time.perf_counter()
            wait_empty(queue)
            return (time.perf_counter() - began) / jobs * 1e3
        finally:
            pool.stop()
    finally:
        queue.close()


def wait_empty(queue: jobq.DurableQueue) -> None:
    deadline = time.monotonic() + 300
    while True:
        stats = queue.stats().queues.get("default")
        counts = stats.counts if stats is not None else {}
        if counts.get(jobq.JobStatus.PENDING, 0) + counts.get(jobq.JobStatus.PROCESSING, 0) == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs still waiting after 300 s: {counts}")
        time.sleep(0.002)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer jobs, one round")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the databases")
    options = parser.parse_args()
    attempts, jobs, rounds = (300, 300, 1) if options.quick else (5000, 3000, 3)
    parent = options.dir or Path(tempfile.gettempdir())
    folder = Path(tempfile.mkdtemp(prefix="jobq-bench-isolation-", dir=parent))
    try:
        rows = []
        trips = [round_trip(folder / f"r{n}", attempts) for n in range(rounds) if _mkdir(folder, n)]
        thread_us = statistics.median(t for t, _ in trips)
        process_us = statistics.median(p for _, p in trips)
        rows.append(("attempt round trip, us per job", thread_us, process_us))
        for threads in (1, 4):
            results = {"thread": [], "process": []}  # type: dict[str, list[float]]
            for n in range(rounds):
                for isolation in ("thread", "process"):
                    run = f"p{threads}-{isolation}-{n}"
                    results[isolation].append(pool_run(folder, run, jobs, threads, isolation))
            rows.append(
                (
                    f"pool of {threads} thread{'s' if threads > 1 else ''}, ms per job",
                    statistics.median(results["thread"]),
                    statistics.median(results["process"]),
                )
            )
        print(f"python {sys.version.split()[0]}, {jobs} jobs per pool run, {rounds} round(s)")
        print()
        print("| workload | thread | process | overhead |")
        print("|---|---|---|---|")
        for label, thread, process in rows:
            print(f"| {label} | {thread:.3f} | {process:.3f} | {process - thread:.3f} |")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _mkdir(folder: Path, n: int) -> bool:
    (folder / f"r{n}").mkdir()
    return True


if __name__ == "__main__":
    main()
