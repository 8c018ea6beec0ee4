"""Processing throughput on SQLite: jobq's worker pool against Huey, against the raw
batched claim-and-complete limit of our schema, across worker processes on one file,
and with a large backlog of pending jobs.

Run from the repository root (needs the ``bench`` extra: ``pip install -e ".[bench]"``)::

    python benchmarks/bench_processing.py            # full run, about 6 minutes
    python benchmarks/bench_processing.py --quick    # about 1 minute, no 1,000,000 backlog

Every measurement runs in a fresh child process (this script with ``--child``), so
threads, connections and the SQLite library of one never disturb the next; the
workloads are interleaved round by round and the table gives medians.

- **4 threads**: 10,000 no-op jobs bulk-enqueued, then ``start_workers(concurrency=4)``;
  jobs/s from the start until every job is recorded completed. jobq with each
  driver (``sqlite3``, ``apsw``); Huey's ``SqliteHuey`` with its own thread consumer
  (4 workers) started in-process, as ``benchmarks/bench_queue.py`` drives it.
- **raw limit**: the same 10,000 jobs through plain SQL on jobq's schema, one
  thread, no Python per job beyond the driver: a transaction claims 32 jobs
  (``UPDATE ... RETURNING``), a second one completes them. What SQLite itself
  allows with batches of 32.
- **processes**: 1, 2 and 4 processes each running a pool of 4 threads on one file
  (20,000 jobs, waiting in a paused queue until every pool is ready).
- **backlog**: the time for the first 10,000 jobs with 10,000, 100,000 and 1,000,000
  pending jobs (inserted with ``executemany`` on jobq's schema), all in one queue
  and spread over four queues that the pool takes together. The rows taken are
  put back after each round, so the backlog stays the same size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import jobq

THREADS = 4
BATCH = 32  # jobs per transaction in the raw limit
TASK = "noop"
DRIVERS = ("sqlite3", "apsw")
QUEUES4 = ("q0", "q1", "q2", "q3")


@dataclass(frozen=True)
class Settings:
    jobs: int  # jobs per processing run
    rounds: int
    process_jobs: int  # jobs for the 1/2/4 process runs
    processes: tuple[int, ...]
    backlogs: tuple[int, ...]


FULL = Settings(10_000, 3, 20_000, (1, 2, 4), (10_000, 100_000, 1_000_000))
QUICK = Settings(5_000, 1, 10_000, (1, 2, 4), (10_000, 100_000))


# -- setup with plain SQL -----------------------------------------------------------------


def connect(path: Path, driver: str) -> Any:
    """A plain autocommit connection with ``execute(...).fetchall()``."""
    if driver == "apsw":
        import apsw

        conn = apsw.Connection(str(path))
        conn.set_busy_timeout(5000)
        return conn
    return sqlite3.connect(path, isolation_level=None, timeout=5.0)


def make_schema(path: Path, driver: str) -> None:
    jobq.DurableQueue(path, driver=driver).close()  # type: ignore[arg-type]


def fill(path: Path, count: int, queues: Sequence[str], driver: str, start: int = 0) -> None:
    """Insert ``count`` pending no-op jobs, round-robin over ``queues``."""
    now = time.time() - 1.0
    conn = connect(path, driver)
    try:
        conn.execute("PRAGMA synchronous = OFF")  # setup only
        sql = (
            "INSERT INTO jobs (queue, name, payload, priority, status, max_attempts, run_at, "
            "created_at, updated_at) VALUES (?, 'noop', ?, 0, 'pending', 3, ?, ?, ?)"
        )
        chunk = 100_000
        n = len(queues)
        for first in range(start, start + count, chunk):
            rows = [
                (queues[i % n], f'{{"args":[{i}],"kwargs":{{}}}}', now, now, now)
                for i in range(first, min(start + count, first + chunk))
            ]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
    finally:
        conn.close()


def unfinished(conn: Any) -> int:
    (row,) = conn.execute(
        "SELECT coalesce(sum(jobs), 0) FROM job_counts WHERE status IN ('pending', 'processing')"
    ).fetchall()
    return int(row[0])


def wait_idle(conn: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while unfinished(conn):
        if time.monotonic() > deadline:
            raise RuntimeError("jobs did not all complete in time")
        time.sleep(0.001)


# -- children: one measurement each ------------------------------------------------------


class Counter:
    def __init__(self, target: int) -> None:
        self.count = 0
        self.target = target
        self.reached = threading.Event()
        self._lock = threading.Lock()

    def hit(self) -> None:
        with self._lock:
            self.count += 1
            if self.count == self.target:
                self.reached.set()


def child_jobq(spec: dict[str, Any]) -> float:
    """jobs/s of one pool of 4 threads over ``jobs`` bulk-enqueued jobs."""
    path, n = Path(spec["path"]), spec["jobs"]
    queue = jobq.DurableQueue(path, driver=spec["driver"])
    counter = Counter(n)
    task = queue.task(TASK)(lambda i: counter.hit())
    task.enqueue_many([(i,) for i in range(n)])
    conn = connect(path, spec["driver"])
    started = time.perf_counter()
    pool = queue.start_workers(concurrency=THREADS)
    counter.reached.wait(300)
    wait_idle(conn, 300)
    elapsed = time.perf_counter() - started
    pool.stop()
    conn.close()
    queue.close()
    return n / elapsed


def child_huey(spec: dict[str, Any]) -> float:
    import signal

    from huey import SqliteHuey  # type: ignore[import-untyped]
    from huey.signals import SIGNAL_COMPLETE  # type: ignore[import-untyped]

    n = spec["jobs"]
    huey = SqliteHuey(filename=spec["path"])
    counter = Counter(n)

    def noop(i: int) -> None:
        pass

    noop.__module__ = "bench_processing"
    task = huey.task(name=TASK)(noop)
    huey.signal(SIGNAL_COMPLETE)(lambda *a, **k: counter.hit())
    task.map(range(n))
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    consumer = huey.create_consumer(
        workers=THREADS, worker_type="thread", periodic=False, check_worker_health=False
    )
    started = time.perf_counter()
    consumer.start()
    for sig, handler in saved.items():
        if handler is not None:
            signal.signal(sig, handler)
    if not counter.reached.wait(600):
        raise RuntimeError("huey did not finish")
    elapsed = time.perf_counter() - started
    consumer.stop(graceful=True)
    return n / elapsed


def child_raw(spec: dict[str, Any]) -> float:
    """Claim 32, commit; complete those 32, commit; until none is left."""
    path, n, driver = Path(spec["path"]), spec["jobs"], spec["driver"]
    make_schema(path, driver)
    fill(path, n, ["default"], driver)
    conn = connect(path, driver)
    conn.execute("PRAGMA synchronous = NORMAL")
    claim = (
        "UPDATE jobs SET status = 'processing', attempts = attempts + 1, lease_owner = 'raw', "
        "lease_token = lower(hex(randomblob(16))), lease_expires_at = ?1 + 30, started_at = ?1, "
        "updated_at = ?1 WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_claim "
        "WHERE status = 'pending' AND queue = 'default' AND run_at <= ?1 "
        f"ORDER BY priority DESC, run_at, id LIMIT {BATCH}) RETURNING id, lease_token, payload"
    )
    complete = (
        "UPDATE jobs SET status = 'completed', result = 'null', finished_at = ?1, "
        "updated_at = ?1, lease_expires_at = NULL WHERE id = ?2 AND lease_token = ?3 "
        "AND status = 'processing'"
    )
    done = 0
    started = time.perf_counter()
    while True:
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(claim, (now,)).fetchall()
        conn.execute("COMMIT")
        if not rows:
            break
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(complete, [(now, job_id, token) for job_id, token, _ in rows])
        conn.execute("COMMIT")
        done += len(rows)
    elapsed = time.perf_counter() - started
    conn.close()
    assert done == n, (done, n)
    return n / elapsed


def child_worker(spec: dict[str, Any]) -> float:
    """A pool of 4 threads on the shared file until stdin closes."""
    queue = jobq.DurableQueue(spec["path"], driver=spec["driver"])
    queue.task(TASK)(lambda i: None)
    pool = queue.start_workers(concurrency=THREADS)
    print("ready", flush=True)
    sys.stdin.read()
    pool.stop()
    queue.close()
    return 0.0


def child_backlog(spec: dict[str, Any]) -> float:
    """jobs/s for the first ``jobs`` jobs of a prefilled file."""
    queue = jobq.DurableQueue(spec["path"], driver=spec["driver"])
    counter = Counter(spec["jobs"])
    queue.task(TASK)(lambda i: counter.hit())
    started = time.perf_counter()
    pool = queue.start_workers(concurrency=THREADS, queues=spec["queues"])
    if not counter.reached.wait(300):
        raise RuntimeError("backlog run did not finish")
    elapsed = time.perf_counter() - started
    pool.stop()
    queue.close()
    return spec["jobs"] / elapsed


CHILDREN: dict[str, Callable[[dict[str, Any]], float]] = {
    "jobq": child_jobq,
    "huey": child_huey,
    "raw": child_raw,
    "worker": child_worker,
    "backlog": child_backlog,
}


BEFORE: str | None = None  # --before: a source tree of another jobq, run alongside


def child_env(before: bool) -> dict[str, str] | None:
    """The environment of a child running the jobq of ``--before`` (None: this one)."""
    if not before or BEFORE is None:
        return None
    return {**os.environ, "PYTHONPATH": BEFORE}


def run_child(spec: dict[str, Any], before: bool = False) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=900,
        env=child_env(before),
    )
    if out.returncode != 0:
        raise RuntimeError(f"child {spec['kind']} failed:\n{out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


# -- the parent ------------------------------------------------------------------------


class Workspace:
    def __init__(self, base: str | None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="jobq-bench-processing-", dir=base))
        self._n = 0

    @contextmanager
    def fresh(self) -> Iterator[Path]:
        self._n += 1
        folder = self.root / str(self._n)
        folder.mkdir()
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


Results = dict[str, list[float]]


def threads_round(ws: Workspace, s: Settings, results: Results) -> None:
    for driver in DRIVERS:
        for before in (False, True) if BEFORE else (False,):
            with ws.fresh() as folder:
                spec = {"kind": "jobq", "path": str(folder / "jobq.db"), "driver": driver}
                rate = run_child({**spec, "jobs": s.jobs}, before)
                results[f"jobq {driver}{' before' if before else ''}"].append(rate)
        with ws.fresh() as folder:
            spec = {"kind": "raw", "path": str(folder / "raw.db"), "driver": driver}
            results[f"raw {driver}"].append(run_child({**spec, "jobs": s.jobs}))
    with ws.fresh() as folder:
        spec = {"kind": "huey", "path": str(folder / "huey.db"), "jobs": s.jobs}
        results["huey"].append(run_child(spec))


def processes_run(folder: Path, driver: str, count: int, jobs: int, before: bool = False) -> float:
    path = folder / "jobq.db"
    make_schema(path, driver)
    conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    conn.execute("INSERT INTO paused_queues (queue, paused_at) VALUES ('default', 0)")
    fill(path, jobs, ["default"], "sqlite3")
    spec = json.dumps({"kind": "worker", "path": str(path), "driver": driver})
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", spec],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(before),
        )
        for _ in range(count)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("a worker process did not start")
        started = time.perf_counter()
        conn.execute("DELETE FROM paused_queues")
        wait_idle(conn, 300)
        return jobs / (time.perf_counter() - started)
    finally:
        conn.close()
        for child in children:
            assert child.stdin is not None
            child.stdin.close()
        for child in children:
            child.wait(60)


def processes_round(ws: Workspace, s: Settings, results: Results) -> None:
    for driver in DRIVERS:
        for count in s.processes:
            for before in (False, True) if BEFORE else (False,):
                with ws.fresh() as folder:
                    rate = processes_run(folder, driver, count, s.process_jobs, before)
                    key = f"{count} processes {driver}{' before' if before else ''}"
                    results[key].append(rate)


@dataclass
class BacklogFile:
    path: Path
    queues: tuple[str, ...]
    size: int
    next_index: int


def backlog_files(ws: Workspace, s: Settings) -> list[BacklogFile]:
    files = []
    for queues in (("default",), QUEUES4):
        for size in s.backlogs:
            folder = ws.root / f"backlog-{len(queues)}-{size}"
            folder.mkdir()
            path = folder / "jobq.db"
            make_schema(path, "sqlite3")
            began = time.perf_counter()
            fill(path, size, queues, "sqlite3")
            print(
                f"  filled {size:,} pending jobs in {len(queues)} queue(s) "
                f"in {time.perf_counter() - began:.1f} s",
                flush=True,
            )
            files.append(BacklogFile(path, queues, size, size))
    return files


def backlog_round(files: list[BacklogFile], s: Settings, results: Results) -> None:
    for f in files:
        for driver in DRIVERS:
            spec = {
                "kind": "backlog",
                "path": str(f.path),
                "driver": driver,
                "queues": list(f.queues),
                "jobs": s.jobs,
            }
            rate = run_child(spec)
            results[f"backlog {len(f.queues)} {f.size} {driver}"].append(rate)
            # Put back as many pending jobs as were taken (or more, rounding).
            conn = sqlite3.connect(f.path, isolation_level=None, timeout=5.0)
            missing = f.size - unfinished(conn)
            conn.close()
            if missing > 0:
                fill(f.path, missing, f.queues, "sqlite3", start=f.next_index)
                f.next_index += missing


# -- report ---------------------------------------------------------------------------------


def med(results: Results, key: str) -> float | None:
    values = results.get(key)
    return statistics.median(values) if values else None


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.0f}{unit}"


def verdict(*checks: bool | None) -> str:
    known = [c for c in checks if c is not None]
    if not known:
        return "?"
    return "yes" if all(known) else "NO"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or not b else a / b


def table(results: Results, s: Settings) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    m = {k: med(results, k) for k in results}
    huey = m.get("huey")
    j3, ja = m.get("jobq sqlite3"), m.get("jobq apsw")
    r3, ra = m.get("raw sqlite3"), m.get("raw apsw")
    rows.append(("processing, 4 threads (jobs/s)", fmt(j3), fmt(ja), f"Huey {fmt(huey)}", "", ""))
    x3, xa = ratio(j3, huey), ratio(ja, huey)
    rows.append(
        (
            "  jobq / Huey",
            fmt(x3, "x"),
            fmt(xa, "x"),
            "",
            ">= 20x",
            verdict(x3 and x3 >= 20, xa and xa >= 20),
        )
    )
    if BEFORE:
        cells = [fmt(m.get(f"jobq {d} before")) for d in DRIVERS]
        rows.append(("  the same, jobq of --before (jobs/s)", *cells, "", "", ""))
    rows.append(("raw claim+complete, 32/txn (jobs/s)", fmt(r3), fmt(ra), "", "", ""))
    y3, ya = ratio(r3, j3), ratio(ra, ja)
    rows.append(
        (
            "  raw limit / jobq",
            fmt(y3, "x"),
            fmt(ya, "x"),
            "",
            "<= 2x",
            verdict(y3 and y3 <= 2, ya and ya <= 2),
        )
    )
    for count in s.processes:
        cells = [fmt(m.get(f"{count} processes {d}")) for d in DRIVERS]
        rows.append((f"{count} process(es) x 4 threads, one file (jobs/s)", *cells, "", "", ""))
        if BEFORE:
            cells = [fmt(m.get(f"{count} processes {d} before")) for d in DRIVERS]
            rows.append(("  the same, jobq of --before (jobs/s)", *cells, "", "", ""))
    top = s.processes[-1]
    gains = [ratio(m.get(f"{top} processes {d}"), m.get(f"1 processes {d}")) for d in DRIVERS]
    rows.append(
        (
            f"  {top} processes / 1",
            *(fmt(g, "x") for g in gains),
            "",
            "> 1x (adds throughput)",
            verdict(*(g and g > 1.05 for g in gains)),
        )
    )
    for nq in (1, 4):
        base = {d: m.get(f"backlog {nq} {s.backlogs[0]} {d}") for d in DRIVERS}
        for size in s.backlogs:
            values = [m.get(f"backlog {nq} {size} {d}") for d in DRIVERS]
            rel = [ratio(v, base[d]) for v, d in zip(values, DRIVERS, strict=True)]
            label = f"{size:,} pending, {nq} queue{'s' if nq > 1 else ''} (jobs/s)"
            cells = [f"{fmt(v)} ({fmt(r, 'x')})" for v, r in zip(values, rel, strict=True)]
            goal = "" if size == s.backlogs[0] else ">= 0.8x of 10k"
            met = "" if size == s.backlogs[0] else verdict(*(r and r >= 0.8 for r in rel))
            rows.append((label, *cells, "", goal, met))
    return rows


def print_table(rows: list[tuple[str, ...]]) -> None:
    header = ("workload", "jobq sqlite3", "jobq apsw", "peer", "goal", "met?")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, fewer jobs")
    parser.add_argument("--dir", help="where the database files go (default: the temp folder)")
    parser.add_argument("--rounds", type=int, help="rounds (median reported)")
    parser.add_argument("--jobs", type=int, help="jobs per run (default 10,000; --quick 5,000)")
    parser.add_argument(
        "--before",
        help="a source tree of another jobq (e.g. a checkout of main) whose 4-thread and "
        "process runs are interleaved with this one's",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(CHILDREN[spec["kind"]](spec), flush=True)
        return
    global BEFORE
    BEFORE = str(Path(args.before).resolve()) if args.before else None
    s = QUICK if args.quick else FULL
    if args.rounds or args.jobs:
        jobs = args.jobs or s.jobs
        s = Settings(jobs, args.rounds or s.rounds, 2 * jobs, s.processes, s.backlogs)
    import apsw

    print(
        f"jobq {version('jobq')} | huey {version('huey')} | sqlite3 module SQLite "
        f"{sqlite3.sqlite_version} | apsw {apsw.apswversion()} | Python "
        f"{sys.version.split()[0]} | {os.cpu_count()} CPUs | {s.jobs:,} jobs, "
        f"{s.rounds} round(s)",
        flush=True,
    )
    ws = Workspace(args.dir)
    results: Results = defaultdict(list)
    try:
        files = backlog_files(ws, s)
        for number in range(s.rounds):
            began = time.perf_counter()
            threads_round(ws, s, results)
            processes_round(ws, s, results)
            backlog_round(files, s, results)
            print(f"  round {number + 1}: {time.perf_counter() - began:.0f} s", flush=True)
    finally:
        ws.close()
    print()
    print_table(table(results, s))


if __name__ == "__main__":
    main()
