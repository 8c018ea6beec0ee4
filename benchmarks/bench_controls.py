"""What each task control costs: the enqueue options (unique-key policies, expiry,
per-key limit keys, enqueue by name) and the processing of jobs that carry them,
against the same work without, on SQLite, in one run.

Run from the repository root::

    python benchmarks/bench_controls.py            # about 1 minute
    python benchmarks/bench_controls.py --quick    # a few seconds; checks it works

The databases go to ``/dev/shm`` when it exists (``--dir`` to choose): a commit's
fsync would otherwise swamp differences of a few microseconds, and what is timed
here is jobq's own work, not the disk's. Rounds alternate the workloads; each
figure is the median over rounds.

- **enqueue, one by one**: microseconds per ``enqueue`` of a no-op task: plain;
  ``unique_key`` (a new key each time, so every job is stored); ``on_duplicate=
  "replace"``, ``debounce`` and ``throttle`` on ONE key (after the first, each
  enqueue replaces or returns the pending job); ``expires_in``; a task with a
  ``limit_key`` (100 accounts); ``queue.enqueue_by_name``.
- **processing**: microseconds per job for a pool of 4 threads to run a bulk-enqueued
  backlog of no-op jobs: plain; every job with an expiry; a per-key
  ``concurrency_limit=1`` over 100 accounts; a task-wide ``concurrency_limit=4``
  (today's limits, the baseline of the per-key row). Retry rules cost nothing
  until a task raises; process isolation has its own benchmark (bench_isolation.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jobq

ENQUEUES = (
    "plain",
    "unique_key, new keys",
    'on_duplicate="replace", one key',
    "debounce=60, one key",
    "throttle=60, one key",
    "expires_in=3600",
    "limit_key (100 accounts)",
    "enqueue_by_name",
)
PROCESSING = (
    "plain",
    "expires_in=3600",
    "per-key concurrency_limit=1, 100 accounts",
    "task-wide concurrency_limit=4",
)


def make_queue(path: Path) -> jobq.DurableQueue:
    queue = jobq.DurableQueue(str(path))

    @queue.task("noop")
    def noop(i: int) -> None:
        return None

    @queue.task("per_key", concurrency_limit=1, limit_key="account")
    def per_key(i: int, account: int) -> None:
        return None

    @queue.task("task_wide", concurrency_limit=4)
    def task_wide(i: int, account: int) -> None:
        return None

    return queue


def enqueue_one_by_one(queue: jobq.DurableQueue, kind: str, jobs: int) -> float:
    """Microseconds per enqueue of ``kind``."""
    noop = queue.get_task("noop")
    calls: dict[str, Callable[[int], object]] = {
        "plain": lambda i: noop.enqueue(i),
        "unique_key, new keys": lambda i: noop.options(unique_key=f"k{i}").enqueue(i),
        'on_duplicate="replace", one key': lambda i: noop.options(
            unique_key="one", on_duplicate="replace"
        ).enqueue(i),
        "debounce=60, one key": lambda i: noop.options(unique_key="one", debounce=60).enqueue(i),
        "throttle=60, one key": lambda i: noop.options(unique_key="one", throttle=60).enqueue(i),
        "expires_in=3600": lambda i: noop.options(expires_in=3600).enqueue(i),
        "limit_key (100 accounts)": lambda i: queue.get_task("per_key").enqueue(i, i % 100),
        "enqueue_by_name": lambda i: queue.enqueue_by_name("noop", args=[i]),
    }
    call = calls[kind]
    began = time.perf_counter()
    for i in range(jobs):
        call(i)
    return (time.perf_counter() - began) / jobs * 1e6


def process_backlog(queue: jobq.DurableQueue, kind: str, jobs: int) -> float:
    """Microseconds per job for 4 threads to run a backlog of ``kind``."""
    if kind == "plain":
        queue.enqueue_many("noop", [(i,) for i in range(jobs)])
    elif kind == "expires_in=3600":
        queue.enqueue_many("noop", [(i,) for i in range(jobs)], expires_in=3600)
    elif kind.startswith("per-key"):
        queue.enqueue_many("per_key", [(i, i % 100) for i in range(jobs)])
    else:
        queue.enqueue_many("task_wide", [(i, i % 100) for i in range(jobs)])
    began = time.perf_counter()
    pool = queue.start_workers(concurrency=4)
    try:
        while queue.stats().queues["default"].counts[jobq.JobStatus.COMPLETED] < jobs:
            time.sleep(0.002)
    finally:
        pool.stop()
    return (time.perf_counter() - began) / jobs * 1e6


def run(rounds: int, enqueues: int, backlog: int, root: Path) -> dict[tuple[str, str], float]:
    workloads: list[tuple[str, tuple[str, ...], Callable[[jobq.DurableQueue, str], float]]] = [
        ("enqueue", ENQUEUES, lambda queue, kind: enqueue_one_by_one(queue, kind, enqueues)),
        ("processing", PROCESSING, lambda queue, kind: process_backlog(queue, kind, backlog)),
    ]
    figures: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="jobq-controls-", dir=root) as folder:
        for r in range(rounds):
            for section, kinds, measure in workloads:
                for number, kind in enumerate(kinds):
                    queue = make_queue(Path(folder) / f"{section}-{r}-{number}.db")
                    try:
                        figure = measure(queue, kind)
                    finally:
                        queue.close()
                    figures.setdefault((section, kind), []).append(figure)
    return {key: statistics.median(values) for key, values in figures.items()}


def table(results: dict[tuple[str, str], float]) -> list[list[str]]:
    rows = [["workload", "option", "µs per job", "vs plain"]]
    for section, kinds in (("enqueue", ENQUEUES), ("processing", PROCESSING)):
        plain = results[(section, "plain")]
        for kind in kinds:
            figure = results[(section, kind)]
            rows.append([section, kind, f"{figure:.1f}", f"{figure / plain:.2f}x"])
    return rows


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"

    print(line(rows[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows[1:]:
        print(line(row))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a few seconds, to check it works")
    parser.add_argument("--rounds", type=int, default=None, help="alternating rounds (median)")
    parser.add_argument("--dir", default=None, help="where the temporary databases go")
    args = parser.parse_args(argv)
    shm = Path("/dev/shm")
    root = Path(args.dir) if args.dir else shm if shm.is_dir() else Path(tempfile.gettempdir())
    rounds = args.rounds or (1 if args.quick else 3)
    enqueues, backlog = (200, 400) if args.quick else (3000, 5000)
    print(f"{rounds} rounds; {enqueues} enqueues and a backlog of {backlog} jobs per workload")
    print(f"databases in {root}", file=sys.stderr)
    print_table(table(run(rounds, enqueues, backlog, root)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
