"""What ``jobq.current_job().log()`` costs on SQLite: a write per call.

Two figures, each the median of ``--rounds`` runs on a fresh file:

- per call: a task logs 200 lines (run in this thread by ``run_until_empty``);
  the time of that job minus the time of a job that logs nothing, per line,
  beside the same measure for ``set_progress`` (also a write per call);
- pool throughput: jobs per second of a 4-thread pool whose task works 0, 1 or
  10 ms (a sleep, as waiting on a server would) and logs 0, 1 or 10 lines, so
  the cost shows as a share of a job's life. Each write takes SQLite's one
  write lock, which the pool's own claims and completions also take: with
  jobs that do nothing, the threads queue for it.

    python benchmarks/bench_job_logs.py            # about 2 minutes
    python benchmarks/bench_job_logs.py --quick    # a few seconds, to check it runs
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jobq


def _queue(folder: str, synchronous: str) -> jobq.DurableQueue:
    storage = jobq.storage.SQLiteStorage(Path(folder) / "jobs.db", synchronous=synchronous)  # type: ignore[arg-type]
    return jobq.DurableQueue(storage, poll_interval=0.001)


def per_call(kind: str, synchronous: str, lines: int) -> float:
    """Microseconds one call of ``kind`` ("log" or "progress") adds to a job."""
    with tempfile.TemporaryDirectory() as folder:
        queue = _queue(folder, synchronous)

        @queue.task("work")
        def work(n: int) -> None:
            job = jobq.current_job()
            for i in range(n):
                if kind == "log":
                    job.log(f"step {i} done")
                else:
                    job.set_progress(i)

        try:
            elapsed = []
            for n in (0, lines):
                work.enqueue(n)
                start = time.perf_counter()
                queue.run_until_empty()
                elapsed.append(time.perf_counter() - start)
        finally:
            queue.close()
    return (elapsed[1] - elapsed[0]) / lines * 1e6


def throughput(lines_per_job: int, jobs: int, work: float) -> float:
    """Jobs per second of a 4-thread pool whose task sleeps ``work`` seconds and
    logs ``lines_per_job`` lines."""
    with tempfile.TemporaryDirectory() as folder:
        queue = _queue(folder, "NORMAL")

        @queue.task("work")
        def task(n: int) -> None:
            job = jobq.current_job()
            if work:
                time.sleep(work)
            for i in range(lines_per_job):
                job.log(f"job {n}: step {i} done")

        try:
            task.enqueue_many([(n,) for n in range(jobs)])
            start = time.perf_counter()
            pool = queue.start_workers(concurrency=4)
            counts = queue.stats().queues["default"].counts
            while counts[jobq.JobStatus.COMPLETED] + counts[jobq.JobStatus.FAILED] < jobs:
                counts = queue.stats().queues["default"].counts
                time.sleep(0.005)
            elapsed = time.perf_counter() - start
            pool.stop(timeout=30)
            if counts[jobq.JobStatus.FAILED]:
                raise RuntimeError(f"{counts[jobq.JobStatus.FAILED]} job(s) failed")
        finally:
            queue.close()
    return jobs / elapsed


def _median(rounds: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round of each")
    parser.add_argument("--rounds", type=int, default=5, help="runs per figure (default 5)")
    args = parser.parse_args()
    rounds, lines, jobs = (1, 50, 200) if args.quick else (args.rounds, 200, 1000)
    print(f"jobq job logs, SQLite; {rounds} round(s), medians")
    print("per call (us):")
    for synchronous in ("NORMAL", "FULL"):
        for kind in ("log", "progress"):
            cost = _median(rounds, functools.partial(per_call, kind, synchronous, lines))
            print(f"  {kind:<8} synchronous={synchronous:<6} {cost:8.1f}")
    print("pool of 4 threads (jobs/s):")
    for work in (0.0, 0.001, 0.01):
        count = jobs if work < 0.01 else jobs // 4
        base = 0.0
        for per_job in (0, 1, 10):
            rate = _median(rounds, functools.partial(throughput, per_job, count, work))
            base = base or rate
            print(
                f"  work {work * 1000:>2.0f} ms, {per_job:>2} line(s) per job  {rate:8.0f}"
                f"  ({rate / base - 1:+.0%})"
            )


if __name__ == "__main__":
    main()
