"""Benchmark enqueueing on SQLite at equal durability: jobq (both drivers) against Huey.

Run from the repository root (needs the ``bench`` extra: ``pip install -e ".[bench]"``)::

    python benchmarks/bench_enqueue.py            # full run, about 2 minutes
    python benchmarks/bench_enqueue.py --quick    # about 15 s; just checks it works

Every measurement gets a fresh database file in a fresh temporary directory
(``--dir`` chooses where: put it on the disk you deploy on, fsync costs differ
widely). Contestants, all in this process, interleaved round after round
(the figure is the median of the rounds):

- jobq with the ``sqlite3`` module and with ``apsw``, through ``task.enqueue``
  (``DurableQueue(..., driver=..., synchronous=...)``);
- Huey's ``SqliteHuey`` through a task call (``add(1, 2)``) at its default
  ``synchronous=FULL``, and at ``NORMAL`` (Huey has no option for it: the
  benchmark sets the pragma on Huey's connection).

Workloads: one by one from one thread; 8 threads enqueueing at once (each its
share of the jobs; every call returns only once its job is committed, at FULL
after the fsync); bulk, 10,000 jobs in one call (``task.enqueue_many``; Huey
has no bulk call, so its figure is a loop of task calls). The goals compare
with Huey at its default FULL in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jobq
from jobq.storage.sqlite.driver import apsw_installed

try:
    from huey import SqliteHuey  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - depends on the environment
    sys.exit(f"missing a peer library ({exc.name}); install them with: pip install -e '.[bench]'")

THREADS = 8


@dataclass(frozen=True)
class Contestant:
    label: str
    open: Callable[[Path, str], tuple[Any, Any, Any, Any]]
    """``open(folder, synchronous)`` -> (enqueue one, enqueue many, closer, commits:
    a callable counting jobq's commits of single enqueues so far, or None)."""
    synchronous: str | None = None
    """Always this setting; None: the workload's."""


def _open_jobq(driver: str) -> Callable[..., Any]:
    def open_(folder: Path, synchronous: str) -> Any:
        queue = jobq.DurableQueue(
            str(folder / "jobs.db"),
            driver=driver,  # type: ignore[arg-type]
            synchronous=synchronous,  # type: ignore[arg-type]
        )

        @queue.task(name="add")
        def add(a: int, b: int) -> int:
            return a + b

        def one(i: int) -> None:
            add.enqueue(i, 1)

        def many(items: list[int]) -> None:
            add.enqueue_many((i, 1) for i in items)

        group = queue.storage._inserts.group  # type: ignore[attr-defined]
        return one, many, queue.close, lambda: group.commits

    return open_


def _open_huey(folder: Path, synchronous: str) -> Any:
    huey = SqliteHuey(filename=str(folder / "huey.db"))
    if synchronous == "NORMAL":
        huey.storage.conn.execute("PRAGMA synchronous = NORMAL")

    @huey.task()
    def add(a: int, b: int) -> int:
        return a + b

    def one(i: int) -> None:
        add(i, 1)

    def many(items: list[int]) -> None:
        for i in items:
            add(i, 1)

    return one, many, huey.storage.close, None


def contestants() -> list[Contestant]:
    found = [Contestant("jobq sqlite3", _open_jobq("sqlite3"))]
    if apsw_installed():
        found.append(Contestant("jobq apsw", _open_jobq("apsw")))
    found.append(Contestant("Huey", _open_huey, "FULL"))
    found.append(Contestant("Huey NORMAL", _open_huey, "NORMAL"))
    return found


def one_by_one(one: Callable[[int], None], many: Any, jobs: int) -> float:
    started = time.perf_counter()
    for i in range(jobs):
        one(i)
    return jobs / (time.perf_counter() - started)


def threads_at_once(one: Callable[[int], None], many: Any, jobs: int) -> float:
    share = jobs // THREADS
    start = threading.Barrier(THREADS + 1)
    errors: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            for i in range(share):
                one(i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return share * THREADS / elapsed


def bulk(one: Any, many: Callable[[list[int]], None], jobs: int) -> float:
    items = list(range(jobs))
    started = time.perf_counter()
    many(items)
    return jobs / (time.perf_counter() - started)


# (label, synchronous, measure, jobs in a full run, quick run)
WORKLOADS: list[tuple[str, str, Callable[..., float], int, int]] = [
    ("one by one, FULL", "FULL", one_by_one, 2000, 300),
    ("one by one, NORMAL", "NORMAL", one_by_one, 5000, 500),
    (f"{THREADS} threads, FULL", "FULL", threads_at_once, 4000, 400),
    (f"{THREADS} threads, NORMAL", "NORMAL", threads_at_once, 8000, 800),
    ("bulk 10,000, FULL", "FULL", bulk, 10_000, 1000),
    ("bulk 10,000, NORMAL", "NORMAL", bulk, 10_000, 1000),
]
GOALS = {"one by one, FULL": 1.5, "one by one, NORMAL": 5.0, f"{THREADS} threads, FULL": 4.0}
"""Workload -> jobq's factor over Huey (at its default FULL) in the same workload."""


BATCHES: dict[tuple[str, str], list[float]] = {}
"""(workload, contestant) -> jobs per commit in each round, for jobq's threads."""


def measure(
    contestant: Contestant, synchronous: str, fn: Callable[..., float], jobs: int, root: Path
) -> tuple[float, float | None]:
    """Jobs per second, and jobq's jobs per commit (None for Huey)."""
    folder = Path(tempfile.mkdtemp(dir=root))
    try:
        one, many, close, commits = contestant.open(folder, synchronous)
        try:
            one(-1)  # the file, its schema and this thread's connection exist
            before = commits() if commits else 0
            rate = fn(one, many, jobs)
            done = commits() - before if commits else 0
            return rate, (jobs // THREADS * THREADS / done if done else None)
        finally:
            close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(rounds: int, quick: bool, root: Path) -> dict[tuple[str, str], float]:
    samples: dict[tuple[str, str], list[float]] = {}
    everyone = contestants()
    for round_ in range(rounds):
        for label, synchronous, fn, full_jobs, quick_jobs in WORKLOADS:
            jobs = quick_jobs if quick else full_jobs
            order = everyone[round_ % len(everyone) :] + everyone[: round_ % len(everyone)]
            for contestant in order:
                setting = contestant.synchronous or synchronous
                rate, per_commit = measure(contestant, setting, fn, jobs, root)
                samples.setdefault((label, contestant.label), []).append(rate)
                if per_commit is not None and fn is threads_at_once:
                    BATCHES.setdefault((label, contestant.label), []).append(per_commit)
        print(f"round {round_ + 1}/{rounds} done", file=sys.stderr, flush=True)
    return {key: statistics.median(values) for key, values in samples.items()}


def table(results: dict[tuple[str, str], float]) -> list[list[str]]:
    labels = [c.label for c in contestants()]
    header = ["workload", *labels, "goal", "met?"]
    rows = [header]
    for label, _sync, _fn, _full, _quick in WORKLOADS:
        cells = [label]
        for name in labels:
            rate = results.get((label, name))
            cells.append("-" if rate is None else f"{rate:,.0f}/s")
        factor = GOALS.get(label)
        if factor is None:
            cells += ["-", "-"]
        else:
            huey = results[(label, "Huey")]
            ours = min(results[(label, name)] for name in labels if name.startswith("jobq"))
            cells.append(f">= {factor:g}x Huey (FULL)")
            met = "yes" if ours >= factor * huey else "no"
            cells.append(f"{met} ({ours / huey:.2f}x)")
        rows.append(cells)
    return rows


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: list[str]) -> str:
        return " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))

    print(line(rows[0]))
    print("-+-".join("-" * width for width in widths))
    for row in rows[1:]:
        print(line(row))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small run (~15 s) to check it works")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (median)")
    parser.add_argument("--dir", default=None, help="where the temporary databases go")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    root = Path(tempfile.mkdtemp(prefix="jobq-bench-enqueue-", dir=args.dir))
    try:
        results = run(rounds, args.quick, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{platform.platform()} | {os.cpu_count()} CPUs | files in {root.parent}")
    print(f"medians of {rounds} interleaved round(s); jobs per second; jobq's goal figure is")
    print("the lower of its two drivers, compared with Huey at its default FULL in this run;")
    print("Huey's columns keep their setting in every row, jobq's follow the workload's")
    print()
    print_table(table(results))
    print()
    for (label, name), values in BATCHES.items():
        print(f"{name}, {label}: {statistics.median(values):.1f} jobs per commit (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
