"""Benchmark jobq's DurableQueue against Huey (SqliteHuey) and persist-queue (SQLiteAckQueue).

Run from the repository root (needs the ``bench`` extra: ``pip install -e ".[bench]"``)::

    python benchmarks/bench_queue.py                # full run, about 3.5 minutes (75 s idle)
    python benchmarks/bench_queue.py --quick        # about 15 s; just checks it works
    python benchmarks/bench_queue.py --idle 30      # a shorter idle period

Every contestant gets a fresh database file in a fresh temporary directory for
every measurement (``--dir`` chooses where: put it on the disk you deploy on,
fsync costs differ widely). Huey and persist-queue leave SQLite at its default
``synchronous=FULL``; jobq runs at its default ``NORMAL`` and at ``FULL``.

All contestants run in this process with 4 worker threads: jobq's
``start_workers(concurrency=4)``, Huey's own ``Consumer`` started in-process
with 4 thread workers (its defaults: polls back off from 0.1 s to 10 s while
idle), and 4 threads doing ``get()`` / ``ack()`` on one persist-queue
``SQLiteAckQueue(multithreading=True)``. "From another process" means a
subprocess (this script with ``--child``) enqueues, recording the wall time
just before each enqueue call; the handler records its own start time.
"""

from __future__ import annotations

import abc
import argparse
import faulthandler
import functools
import json
import operator
import os
import platform
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TypeVar

import same_sqlite

import jobq

try:
    import persistqueue
    from huey import SqliteHuey  # type: ignore[import-untyped]
    from huey.signals import SIGNAL_COMPLETE  # type: ignore[import-untyped]
    from persistqueue.exceptions import Empty
except ImportError as exc:  # pragma: no cover - depends on the environment
    sys.exit(f"missing a peer library ({exc.name}); install them with: pip install -e '.[bench]'")

Sync = Literal["NORMAL", "FULL"]
Kind = Literal["jobq", "huey", "pq"]
F = TypeVar("F", bound=Callable[..., Any])

THREADS = 4
TASK = "noop"  # the task name every contestant (and the child process) uses
HEADER = ("workload", "jobq (NORMAL)", "jobq (FULL)", "Huey", "persist-queue", "goal", "met?")
COLUMNS = ("jobq-normal", "jobq-full", "huey", "pq")
JOBQ_COLUMNS: tuple[tuple[Sync, str], ...] = (("NORMAL", "jobq-normal"), ("FULL", "jobq-full"))


@dataclass(frozen=True)
class Settings:
    jobs: int  # jobs per enqueue / processing run
    rounds: int  # repeats of the enqueue and processing runs (median reported)
    samples: int  # latency samples per contestant and kind
    idle: float  # seconds of idle before the "first job after idle" measurement
    finished_rows: int  # finished rows already in the table for the last workload
    pq_tick: float  # persist-queue consumers' get(timeout=...): 10 s is its blocking tick


FULL = Settings(
    jobs=10_000, rounds=3, samples=300, idle=75.0, finished_rows=1_000_000, pq_tick=10.0
)
QUICK = Settings(jobs=1_000, rounds=1, samples=40, idle=3.0, finished_rows=20_000, pq_tick=0.5)


def _task_module(fn: F) -> F:
    # Huey names a task after its function's module: give both processes the same one.
    fn.__module__ = "bench_queue"
    return fn


class Recorder:
    """What handlers report: the wall time each job started, and how many finished."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.starts: dict[int, float] = {}
        self.finished = 0
        self._changed = threading.Condition(self._lock)

    def started(self, index: int) -> None:
        now = time.time()
        with self._lock:
            self.starts[index] = now
            self._changed.notify_all()

    def finish(self) -> None:
        with self._lock:
            self.finished += 1
            self._changed.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._lock:
            return self._changed.wait_for(predicate, timeout)

    def wait_started(self, indexes: Sequence[int], timeout: float) -> bool:
        return self.wait(lambda: all(i in self.starts for i in indexes), timeout)


# -- contestants --------------------------------------------------------------------------


class Contestant(abc.ABC):
    """One queue library on one fresh database, with 4 worker threads once started."""

    kind: Kind
    column: str

    def __init__(self, folder: Path, settings: Settings) -> None:
        self.folder = folder
        self.settings = settings
        self.recorder = Recorder()

    @abc.abstractmethod
    def enqueue(self, index: int) -> None: ...

    def enqueue_bulk(self, count: int) -> str:
        """Store ``count`` jobs the fastest way the library offers; say how (or "n/a")."""
        return "n/a"

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def wait_all_done(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` jobs have run and their completion is recorded."""
        return self.recorder.wait(lambda: self.recorder.finished >= count, timeout)

    @abc.abstractmethod
    def child_target(self) -> dict[str, str]:
        """How the child process opens this database to enqueue into it."""


class JobqContestant(Contestant):
    kind = "jobq"

    def __init__(self, folder: Path, settings: Settings, synchronous: Sync) -> None:
        super().__init__(folder, settings)
        self.synchronous = synchronous
        self.column = "jobq-normal" if synchronous == "NORMAL" else "jobq-full"
        self.path = folder / "jobq.db"
        self.queue = jobq.DurableQueue(self.path, synchronous=synchronous)
        recorder = self.recorder

        @_task_module
        def noop(i: int) -> None:
            recorder.started(i)

        self.task = self.queue.task(TASK)(noop)
        self.pool: Any = None

    def enqueue(self, index: int) -> None:
        self.task.enqueue(index)

    def enqueue_bulk(self, count: int) -> str:
        self.task.enqueue_many([(i,) for i in range(count)])
        return "enqueue_many"

    def start(self) -> None:
        self.pool = self.queue.start_workers(concurrency=THREADS)

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.stop(timeout=10.0)
            self.pool = None

    def close(self) -> None:
        self.stop()
        self.queue.close()

    def wait_all_done(self, count: int, timeout: float) -> bool:
        # Every handler ran; then wait for the group commit that records them.
        deadline = time.monotonic() + timeout
        if not self.recorder.wait(lambda: len(self.recorder.starts) >= count, timeout):
            return False
        return wait_jobq_idle(self.path, deadline)

    def child_target(self) -> dict[str, str]:
        return {"kind": "jobq", "path": str(self.path), "sync": self.synchronous}


def unfinished_jobq_jobs(conn: Any) -> int:
    """Pending plus processing jobs, each counted off its partial index."""
    pending = conn.execute(
        "SELECT count(*) FROM jobs INDEXED BY jobs_due WHERE status = 'pending'"
    ).fetchone()[0]
    processing = conn.execute(
        "SELECT count(*) FROM jobs INDEXED BY jobs_lease WHERE status = 'processing'"
    ).fetchone()[0]
    return int(pending) + int(processing)


def wait_jobq_idle(path: Path, deadline: float) -> bool:
    conn = same_sqlite.connect(path)
    try:
        while unfinished_jobq_jobs(conn):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True
    finally:
        conn.close()


class HueyContestant(Contestant):
    kind = "huey"
    column = "huey"

    def __init__(self, folder: Path, settings: Settings) -> None:
        super().__init__(folder, settings)
        self.path = folder / "huey.db"
        self.huey = SqliteHuey(filename=str(self.path))
        recorder = self.recorder

        @_task_module
        def noop(i: int) -> None:
            recorder.started(i)

        self.task = self.huey.task(name=TASK)(noop)

        def completed(signal: str, task: Any, *args: Any, **kwargs: Any) -> None:
            recorder.finish()

        self.huey.signal(SIGNAL_COMPLETE)(completed)
        self.consumer: Any = None

    def enqueue(self, index: int) -> None:
        self.task(index)

    def enqueue_bulk(self, count: int) -> str:
        self.task.map(range(count))  # Huey's only batch API: still one INSERT + commit each
        return "map()"

    def start(self) -> None:
        # The consumer as `huey_consumer` builds it, run in this process: thread workers,
        # default polling. Its start() installs signal handlers meant for its own main
        # loop, which does not run here: put ours back.
        names = ("SIGINT", "SIGTERM", "SIGHUP")
        saved = {
            getattr(signal, n): signal.getsignal(getattr(signal, n))
            for n in names
            if hasattr(signal, n)
        }
        self.consumer = self.huey.create_consumer(
            workers=THREADS,
            worker_type="thread",
            periodic=False,
            check_worker_health=False,
            shutdown_timeout=10.0,
        )
        try:
            self.consumer.start()
        finally:
            for sig, handler in saved.items():
                if handler is not None:  # None: not set from Python, leave it
                    signal.signal(sig, handler)

    def stop(self) -> None:
        if self.consumer is not None:
            self.consumer.stop(graceful=True)
            self.consumer = None

    def close(self) -> None:
        self.stop()
        self.huey.storage.close()

    def child_target(self) -> dict[str, str]:
        return {"kind": "huey", "path": str(self.path)}


class PersistQueueContestant(Contestant):
    kind = "pq"
    column = "pq"

    def __init__(self, folder: Path, settings: Settings) -> None:
        super().__init__(folder, settings)
        self.path = folder / "pq"
        self.queue = persistqueue.SQLiteAckQueue(str(self.path), multithreading=True)
        self.threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def enqueue(self, index: int) -> None:
        self.queue.put(index)

    def _consume(self) -> None:
        queue, recorder, tick = self.queue, self.recorder, self.settings.pq_tick
        while not self._stopping.is_set():
            try:
                item = queue.get(timeout=tick, raw=True)
            except Empty:
                continue
            if item["data"] is None:  # stop sentinel
                queue.ack(item)
                return
            recorder.started(item["data"])
            queue.ack(item)
            recorder.finish()

    def start(self) -> None:
        for number in range(THREADS):
            thread = threading.Thread(
                target=self._consume, name=f"pq-consumer-{number}", daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        if not self.threads:
            return
        self._stopping.set()
        for _ in self.threads:
            self.queue.put(None)  # wakes a blocked get() in this process at once
        deadline = time.monotonic() + 10.0 + self.settings.pq_tick
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.threads = []

    def close(self) -> None:
        self.stop()
        self.queue.close()

    def child_target(self) -> dict[str, str]:
        return {"kind": "pq", "path": str(self.path)}


Factory = Callable[[Path], Contestant]


def factories(settings: Settings) -> dict[str, Factory]:
    return {
        "jobq-normal": lambda folder: JobqContestant(folder, settings, "NORMAL"),
        "jobq-full": lambda folder: JobqContestant(folder, settings, "FULL"),
        "huey": lambda folder: HueyContestant(folder, settings),
        "pq": lambda folder: PersistQueueContestant(folder, settings),
    }


class Workspace:
    """Fresh temporary directories under one root, all removed at the end."""

    def __init__(self, base: str | None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="jobq-bench-queue-", dir=base))
        self._count = 0

    def fresh(self) -> Path:
        self._count += 1
        folder = self.root / f"run{self._count}"
        folder.mkdir()
        return folder

    def discard(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def contestant(workspace: Workspace, factory: Factory) -> Iterator[Contestant]:
    folder = workspace.fresh()
    made = factory(folder)
    try:
        yield made
    finally:
        made.close()
        workspace.discard(folder)


# -- the child process that enqueues from outside -----------------------------------------


def child_main(spec_text: str) -> None:
    """Open every target, then enqueue ``count`` jobs into each, printing the wall time
    taken just before each enqueue call as JSON."""
    spec = json.loads(spec_text)
    rng = random.Random(spec["seed"])
    enqueuers: list[Callable[[int], Any]] = []
    for target in spec["targets"]:
        if target["kind"] == "jobq":
            queue = jobq.DurableQueue(target["path"], synchronous=target["sync"])

            @_task_module
            def noop(i: int) -> None:
                raise AssertionError("runs in the parent only")

            enqueuers.append(queue.task(TASK)(noop).enqueue)
        elif target["kind"] == "huey":
            huey = SqliteHuey(filename=target["path"])
            enqueuers.append(huey.task(name=TASK)(_task_module(lambda i: None)))
        else:  # auto_resume=False: a producer must not requeue the consumers' unacked items
            enqueuers.append(
                persistqueue.SQLiteAckQueue(
                    target["path"], multithreading=True, auto_resume=False
                ).put
            )
    low, high = spec["gap"]
    times: list[list[float]] = []
    for enqueue in enqueuers:
        times.append([])
        for index in range(spec["count"]):
            time.sleep(rng.uniform(low, high))
            times[-1].append(time.time())
            enqueue(index)
        time.sleep(spec["between"])
    print(json.dumps(times), flush=True)


def run_child(
    targets: list[dict[str, str]],
    *,
    count: int,
    gap: tuple[float, float],
    between: float,
    seed: int,
) -> list[list[float]]:
    spec = {"targets": targets, "count": count, "gap": gap, "between": between, "seed": seed}
    budget = 60.0 + len(targets) * (count * gap[1] + between) * 3
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=budget,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the enqueueing child failed ({done.returncode}):\n{done.stderr}")
    times: list[list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return times


# -- measurements ----------------------------------------------------------------------


@dataclass
class Results:
    enqueue_rate: dict[str, list[float]]  # jobs/s
    bulk_ms: dict[str, list[float]]
    bulk_how: dict[str, str]
    process_rate: dict[str, list[float]]  # jobs/s
    latency_local: dict[str, list[float]]  # ms
    latency_remote: dict[str, list[float]]  # ms
    idle_ms: dict[str, float | None]
    big_rate: dict[str, list[float]]  # jobq columns only
    empty_rate: dict[str, list[float]]


def done_timeout(settings: Settings, count: int) -> float:
    return 120.0 + count / 50  # far above any contestant's pace; a hang fails loudly


def enqueue_and_process(
    workspace: Workspace, factory: Factory, settings: Settings, results: Results, column: str
) -> None:
    n = settings.jobs
    with contestant(workspace, factory) as c:
        started = time.perf_counter()
        for index in range(n):
            c.enqueue(index)
        results.enqueue_rate[column].append(n / (time.perf_counter() - started))
        started = time.perf_counter()
        c.start()
        if not c.wait_all_done(n, done_timeout(settings, n)):
            raise RuntimeError(f"{column}: the {n} jobs did not all complete")
        results.process_rate[column].append(n / (time.perf_counter() - started))


def bulk(
    workspace: Workspace, factory: Factory, settings: Settings, results: Results, column: str
) -> None:
    with contestant(workspace, factory) as c:
        started = time.perf_counter()
        how = c.enqueue_bulk(settings.jobs)
        elapsed = time.perf_counter() - started
        results.bulk_how[column] = how
        if how != "n/a":
            results.bulk_ms[column].append(elapsed * 1000)


def warm_up(c: Contestant, index: int) -> None:
    """One job through the started pool, so connections are open and threads waiting."""
    c.enqueue(index)
    if not c.recorder.wait_started([index], 30.0):
        raise RuntimeError(f"{c.column}: the warm-up job never ran")
    time.sleep(0.2)


def latencies(c: Contestant, sent: list[float], first: int, timeout: float) -> list[float]:
    indexes = range(first, first + len(sent))
    if not c.recorder.wait_started(indexes, timeout):
        missing = [i for i in indexes if i not in c.recorder.starts]
        raise RuntimeError(f"{c.column}: {len(missing)} latency jobs never ran")
    return [(c.recorder.starts[i] - t) * 1000 for i, t in zip(indexes, sent, strict=True)]


WARM_UP = 1_000_000  # job index of warm-up jobs, away from the measured ones


def pickup_local(
    workspace: Workspace,
    factory: Factory,
    settings: Settings,
    results: Results,
    column: str,
    seed: int,
) -> None:
    rng = random.Random(seed)
    with contestant(workspace, factory) as c:
        c.start()
        warm_up(c, WARM_UP)
        sent = []
        for index in range(settings.samples):
            time.sleep(rng.uniform(0.005, 0.015))
            sent.append(time.time())
            c.enqueue(index)
        results.latency_local[column] = latencies(c, sent, 0, 30.0 + 2 * settings.pq_tick)


def pickup_remote(
    workspace: Workspace,
    factory: Factory,
    settings: Settings,
    results: Results,
    column: str,
    seed: int,
) -> None:
    with contestant(workspace, factory) as c:
        c.start()
        warm_up(c, WARM_UP)
        sent = run_child(
            [c.child_target()], count=settings.samples, gap=(0.005, 0.015), between=0.0, seed=seed
        )[0]
        results.latency_remote[column] = latencies(c, sent, 0, 30.0 + 2 * settings.pq_tick)


def after_idle(
    workspace: Workspace, makers: dict[str, Factory], settings: Settings, results: Results
) -> None:
    """All contestants idle side by side for ``settings.idle`` seconds; then one child
    enqueues one job into each, a quarter of a second apart."""
    made: dict[str, Contestant] = {}
    folders: list[Path] = []
    try:
        for column, factory in makers.items():
            folders.append(workspace.fresh())
            made[column] = factory(folders[-1])
            made[column].start()
            warm_up(made[column], WARM_UP)
        time.sleep(settings.idle)
        sent = run_child(
            [c.child_target() for c in made.values()], count=1, gap=(0.0, 0.0), between=0.25, seed=0
        )
        deadline = time.monotonic() + 30.0 + 2 * settings.pq_tick
        for (column, c), times in zip(made.items(), sent, strict=True):
            if c.recorder.wait_started([0], max(0.0, deadline - time.monotonic())):
                results.idle_ms[column] = (c.recorder.starts[0] - times[0]) * 1000
            else:
                results.idle_ms[column] = None
    finally:
        for c in made.values():
            c.close()
        for folder in folders:
            workspace.discard(folder)


def load_finished_rows(path: Path, count: int) -> None:
    """Insert ``count`` completed jobs straight into jobq's table, as workers leave them."""
    now = time.time()
    spread = 86400.0 / max(count, 1)  # finished over the last day: retention keeps them
    conn = same_sqlite.connect(path)
    try:
        conn.execute("PRAGMA synchronous = OFF")  # setup only
        sql = (
            "INSERT INTO jobs (queue, name, payload, priority, status, attempts, max_attempts, "
            "run_at, lease_owner, lease_token, result, created_at, started_at, finished_at, "
            "updated_at) VALUES ('default', ?, ?, 0, 'completed', 1, 3, ?, ?, ?, 'null', ?, ?, "
            "?, ?)"
        )
        owner = f"{platform.node()}:{os.getpid()}:pool1"
        chunk = 100_000
        for start in range(0, count, chunk):
            rows = []
            for i in range(start, min(count, start + chunk)):
                t = now - 86400.0 + i * spread
                rows.append(
                    (
                        TASK,
                        f'{{"args":[{i}],"kwargs":{{}}}}',
                        t,
                        owner,
                        f"{i:032x}",
                        t,
                        t,
                        t + 0.001,
                        t + 0.001,
                    )
                )
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def process_prefilled(path: Path, settings: Settings, synchronous: Sync) -> float:
    """jobs/s processing ``settings.jobs`` bulk-enqueued jobs on the file at ``path``."""
    c = JobqContestant(path.parent, settings, synchronous)
    try:
        n = settings.jobs
        c.enqueue_bulk(n)
        started = time.perf_counter()
        c.start()
        if not c.wait_all_done(n, done_timeout(settings, n)):
            raise RuntimeError(f"jobq ({synchronous}): jobs over a big table did not complete")
        return n / (time.perf_counter() - started)
    finally:
        c.close()


def big_table(workspace: Workspace, settings: Settings, results: Results) -> None:
    big = workspace.fresh()
    try:
        jobq.DurableQueue(big / "jobq.db").close()  # the schema
        load_finished_rows(big / "jobq.db", settings.finished_rows)
        for _ in range(settings.rounds):
            for synchronous, column in JOBQ_COLUMNS:
                empty = workspace.fresh()
                try:
                    rate = process_prefilled(empty / "jobq.db", settings, synchronous)
                    results.empty_rate[column].append(rate)
                finally:
                    workspace.discard(empty)
                rate = process_prefilled(big / "jobq.db", settings, synchronous)
                results.big_rate[column].append(rate)
    finally:
        workspace.discard(big)


# -- report ------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if value >= 100:
        text = f"{value:,.0f}"
    elif value >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return text + unit


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def verdict(checks: dict[str, bool | None]) -> str:
    """``checks`` maps "N"/"F" (jobq NORMAL / FULL) to whether the goal was met."""
    shown = {k: v for k, v in checks.items() if v is not None}
    if not shown:
        return "-"
    if all(shown.values()):
        return "yes"
    if not any(shown.values()):
        return "no"
    return " ".join(f"{k}:{'yes' if v else 'no'}" for k, v in shown.items())


def build_table(results: Results, settings: Settings) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    k = f"{settings.jobs // 1000}k" if settings.jobs >= 1000 else str(settings.jobs)

    def cells(values: dict[str, float | None], unit: str = "") -> list[str]:
        return [fmt(values.get(col), unit) for col in COLUMNS]

    def jobq_checks(values: dict[str, float | None], ok: Callable[[float], bool]) -> str:
        checks: dict[str, bool | None] = {}
        for key, col in (("N", "jobq-normal"), ("F", "jobq-full")):
            value = values.get(col)
            checks[key] = None if value is None else ok(value)
        return verdict(checks)

    enq = {col: median(v) for col, v in results.enqueue_rate.items()}
    rows.append((f"enqueue {k} one by one (jobs/s)", *cells(enq), "-", "-"))

    bulk_ms = {col: median(v) for col, v in results.bulk_ms.items()}
    bulk_cells = []
    for col in COLUMNS:
        how = results.bulk_how.get(col, "n/a")
        if how == "n/a":
            bulk_cells.append("n/a")
        elif col.startswith("jobq"):
            bulk_cells.append(fmt(bulk_ms[col]))
        else:
            bulk_cells.append(f"{fmt(bulk_ms[col])} ({how})")
    rows.append(
        (
            f"enqueue {k} in bulk (ms)",
            *bulk_cells,
            "< 25 ms",
            jobq_checks(bulk_ms, lambda v: v < 25),
        )
    )

    rate = {col: median(v) for col, v in results.process_rate.items()}
    huey_rate = rate.get("huey")
    ratios = {
        col: (rate[col] or 0) / huey_rate
        for col in ("jobq-normal", "jobq-full")
        if huey_rate and rate.get(col)
    }
    met = jobq_checks({c: ratios.get(c) for c in ratios}, lambda v: v >= 10)
    shown = " / ".join(f"{ratios[c]:.1f}x" for c in ratios)
    rows.append(
        (
            f"process {k} no-op, 4 threads (jobs/s)",
            *cells(rate),
            ">= 10x Huey",
            f"{met} ({shown})" if shown else met,
        )
    )

    latency_rows: tuple[tuple[str, dict[str, list[float]], str, float], ...] = (
        ("same process", results.latency_local, "< 2 ms", 2.0),
        ("other process", results.latency_remote, "< 15 ms", 15.0),
    )
    for label, source, goal, limit in latency_rows:
        p50 = {col: percentile(v, 0.50) if v else None for col, v in source.items()}
        p99 = {col: percentile(v, 0.99) if v else None for col, v in source.items()}
        rows.append((f"pickup p50, {label} (ms)", *cells(p50), "-", "-"))
        rows.append(
            (
                f"pickup p99, {label} (ms)",
                *cells(p99),
                goal,
                jobq_checks(p99, functools.partial(operator.gt, limit)),
            )
        )

    rows.append(
        (
            f"first job after {settings.idle:g} s idle (ms)",
            *cells(results.idle_ms),
            "< 50 ms",
            jobq_checks(results.idle_ms, lambda v: v < 50),
        )
    )

    empty = {col: median(v) for col, v in results.empty_rate.items()}
    big = {col: median(v) for col, v in results.big_rate.items()}
    rows_k = (
        f"{settings.finished_rows / 1e6:g}M"
        if settings.finished_rows >= 10**6
        else (f"{settings.finished_rows // 1000}k")
    )
    rows.append((f"process {k}, empty table (jobs/s)", *cells(empty), "-", "-"))
    change = {col: (big[col] or 0) / (empty[col] or 1) - 1 for col in big if empty.get(col)}
    met6 = jobq_checks({c: change.get(c) for c in change}, lambda v: v >= -0.20)
    shown6 = " / ".join(f"{change[c]:+.0%}" for c in change)
    rows.append(
        (
            f"process {k}, {rows_k} finished rows (jobs/s)",
            *cells(big),
            "within 20% of empty",
            f"{met6} ({shown6})" if shown6 else met6,
        )
    )
    return rows


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]

    def line(row: tuple[str, ...]) -> str:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        return " | ".join(cells).rstrip()

    print(line(HEADER))
    print("-+-".join("-" * width for width in widths))
    for row in rows:
        print(line(row))


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def print_environment(settings: Settings, workspace: Workspace) -> None:
    print(
        f"python {platform.python_version()} | SQLite {sqlite3.sqlite_version} | "
        f"jobq {version('jobq')} ({Path(jobq.__file__).parent}) | huey {version('huey')} | "
        f"persist-queue {version('persist-queue')}"
    )
    print(f"{platform.platform()} | {os.cpu_count()} CPUs | files in {workspace.root.parent}")
    print(
        f"{settings.jobs:,} jobs per run, {settings.rounds} round(s) (medians), "
        f"{settings.samples} latency samples each, {settings.idle:g} s idle, "
        f"{settings.finished_rows:,} finished rows; Huey and persist-queue at SQLite's "
        "default synchronous=FULL, WAL"
    )


# -- main -------------------------------------------------------------------------------


def run(settings: Settings, base: str | None) -> Results:
    makers = factories(settings)
    results = Results(
        enqueue_rate={c: [] for c in COLUMNS},
        bulk_ms={c: [] for c in COLUMNS},
        bulk_how={},
        process_rate={c: [] for c in COLUMNS},
        latency_local={},
        latency_remote={},
        idle_ms={},
        big_rate={},
        empty_rate={},
    )
    results.big_rate = {"jobq-normal": [], "jobq-full": []}
    results.empty_rate = {"jobq-normal": [], "jobq-full": []}
    workspace = Workspace(base)
    print_environment(settings, workspace)
    try:
        for index in range(settings.rounds):
            order = COLUMNS[index % 4 :] + COLUMNS[: index % 4]
            for column in order:
                step(f"round {index + 1}: enqueue + process, {column}")
                enqueue_and_process(workspace, makers[column], settings, results, column)
                step(f"round {index + 1}: bulk enqueue, {column}")
                bulk(workspace, makers[column], settings, results, column)
        for seed, column in enumerate(COLUMNS):
            step(f"pickup latency, {column}")
            pickup_local(workspace, makers[column], settings, results, column, seed)
            pickup_remote(workspace, makers[column], settings, results, column, seed)
        step(f"first job after {settings.idle:g} s idle, all contestants at once")
        after_idle(workspace, makers, settings, results)
        step(f"jobq over {settings.finished_rows:,} finished rows")
        big_table(workspace, settings, results)
    finally:
        workspace.close()
    return results


_began = time.monotonic()


def step(text: str) -> None:
    print(f"[{time.monotonic() - _began:6.1f} s] {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small run (~30 s) to check it works")
    parser.add_argument(
        "--idle",
        type=float,
        default=None,
        help="seconds of idle before the first-job measurement (default 75, or 3 with --quick)",
    )
    parser.add_argument("--jobs", type=int, default=None, help="jobs per enqueue/process run")
    parser.add_argument("--rounds", type=int, default=None, help="repeats of those runs")
    parser.add_argument("--dir", default=None, help="where the temporary databases go")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child_main(args.child)
        return 0
    settings = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    if args.idle is not None:
        changes["idle"] = args.idle
    if args.jobs is not None:
        changes["jobs"] = args.jobs
    if args.rounds is not None:
        changes["rounds"] = args.rounds
    if changes:
        settings = Settings(**{**settings.__dict__, **changes})
    # Whatever hangs, the benchmark ends: dump every thread's stack and exit.
    faulthandler.dump_traceback_later(600.0 + 3 * settings.idle, exit=True)
    try:
        results = run(settings, args.dir)
    finally:
        faulthandler.cancel_dump_traceback_later()
    print()
    print_table(build_table(results, settings))
    return 0


if __name__ == "__main__":
    with suppress(BrokenPipeError):
        sys.exit(main())
