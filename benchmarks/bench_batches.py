"""Benchmark batches: 10,000 no-op jobs with a callback, against the same jobs alone.

Run from the repository root::

    python benchmarks/bench_batches.py                      # SQLite, 10,000 jobs, 3 rounds
    python benchmarks/bench_batches.py --url postgresql://...  # PostgreSQL too
    python benchmarks/bench_batches.py --quick              # 1,000 jobs, 1 round: checks it runs

Each measurement gets a fresh database (a new SQLite file in a temporary folder,
``--dir`` chooses where; a new schema on PostgreSQL, dropped afterwards) and a
worker pool of 4 threads in this process, started and idle before the clock
starts. Two workloads:

- **without a batch**: ``noop.enqueue_many(N)``; the clock stops when the queue's
  counts say all N jobs completed (polled every millisecond once the last one ran);
- **batch**: ``with queue.batch(on_complete=report): batch.enqueue_many(noop, N)``;
  the clock stops when the callback runs, which the database enqueues in the
  transaction that recorded the last completion.

Both clocks start before the enqueue, so the batch pays for its own bookkeeping
(the counts kept as each job ends, the callback job) plus one more claim and run.
The goal: the batch within 10% of the jobs alone. Medians of ``--rounds`` runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jobq

THREADS = 4
GOAL = 1.10
HEADER = (
    "backend",
    "jobs",
    "without a batch (s)",
    "batch to callback (s)",
    "ratio",
    "goal",
    "met?",
)


@contextmanager
def fresh_queue(backend: str, folder: str, url: str | None) -> Iterator[jobq.DurableQueue]:
    """A queue on a new, empty database of ``backend``, closed (and dropped) after."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            queue = jobq.DurableQueue(str(Path(scratch) / "bench.db"), poll_interval=0.05)
            try:
                yield queue
            finally:
                queue.close()
        return
    import psycopg

    from jobq.storage.postgres import PostgresStorage

    assert url is not None
    schema = f"bench_batches_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in url else "?"
    try:
        storage = PostgresStorage(f"{url}{separator}options=-c%20search_path%3D{schema}")
        queue = jobq.DurableQueue(storage, poll_interval=0.05)
        try:
            yield queue
        finally:
            queue.close()
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def run_once(backend: str, jobs: int, *, batch: bool, folder: str, url: str | None) -> float:
    """Seconds from the enqueue of ``jobs`` no-op jobs to the end (see the module docstring)."""
    with fresh_queue(backend, folder, url) as queue:
        ran = 0
        lock = threading.Lock()
        last_ran = threading.Event()
        reported = threading.Event()

        @queue.task("noop")
        def noop(n: int) -> None:
            nonlocal ran
            with lock:
                ran += 1
                if ran == jobs:
                    last_ran.set()

        @queue.task("report")
        def report(summary: jobq.BatchSummary) -> None:
            assert summary["completed"] == jobs
            reported.set()

        pool = queue.start_workers(concurrency=THREADS)
        try:
            calls = [(n,) for n in range(jobs)]
            started = time.perf_counter()
            if batch:
                with queue.batch(on_complete=report) as made:
                    made.enqueue_many(noop, calls)
                if not reported.wait(300):
                    raise SystemExit("the batch callback did not run within 300 s")
            else:
                noop.enqueue_many(calls)
                if not last_ran.wait(300):
                    raise SystemExit("the jobs did not run within 300 s")
                wait_until(lambda: _completed(queue) == jobs)
            return time.perf_counter() - started
        finally:
            pool.stop(timeout=30)


def _completed(queue: jobq.DurableQueue) -> int:
    counts = queue.stats().queues.get("default")
    return 0 if counts is None else counts.counts[jobq.JobStatus.COMPLETED]


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("the completions were not recorded within 60 s")
        pause.wait(0.001)


def table(rows: list[tuple[Any, ...]]) -> str:
    cells = [HEADER, *[tuple(str(c) for c in row) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADER))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "-|-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1,000 jobs, 1 round")
    parser.add_argument("--jobs", type=int, default=None, help="jobs per run (default 10,000)")
    parser.add_argument("--rounds", type=int, default=None, help="runs per figure (default 3)")
    parser.add_argument("--dir", default=None, help="where the SQLite files go")
    parser.add_argument("--url", default=None, help="a PostgreSQL server to measure too")
    args = parser.parse_args(argv)
    jobs = args.jobs or (1000 if args.quick else 10_000)
    rounds = args.rounds or (1 if args.quick else 3)
    folder = args.dir or tempfile.gettempdir()
    backends = ["sqlite"] + (["postgresql"] if args.url else [])
    print(
        f"{jobs:,} no-op jobs, {THREADS} worker threads in this process, median of {rounds} "
        f"run(s); Python {sys.version.split()[0]}, {os.cpu_count()} CPUs",
        flush=True,
    )
    rows = []
    for backend in backends:
        plain: list[float] = []
        batched: list[float] = []
        for _ in range(rounds):  # alternate, so a slow spell of the machine hits both
            plain.append(run_once(backend, jobs, batch=False, folder=folder, url=args.url))
            batched.append(run_once(backend, jobs, batch=True, folder=folder, url=args.url))
        alone, whole = statistics.median(plain), statistics.median(batched)
        ratio = whole / alone
        rows.append(
            (
                backend,
                f"{jobs:,}",
                f"{alone:.3f}",
                f"{whole:.3f}",
                f"{ratio:.3f}",
                f"<= {GOAL:.2f}",
                "yes" if ratio <= GOAL else "no",
            )
        )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
