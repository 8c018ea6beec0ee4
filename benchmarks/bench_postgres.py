"""Benchmark jobq's DurableQueue on PostgreSQL against Procrastinate, raw psycopg and SQLite.

Run from the repository root (needs the ``postgres`` and ``bench`` extras, Procrastinate
3.x, and PostgreSQL's server programs, e.g. Debian's ``postgresql`` package)::

    python benchmarks/bench_postgres.py              # full run, about 4 minutes
    python benchmarks/bench_postgres.py --quick      # about 30 s; just checks it works
    python benchmarks/bench_postgres.py --url postgresql://me@db/postgres   # your server

By default a throwaway PostgreSQL server is started on 127.0.0.1 in a temporary
folder with the server's DEFAULT settings (``fsync=on``, ``synchronous_commit=on``;
only the address, port and socket folder are set, and initdb skips its own final
sync of the new cluster), and removed at the end, also on errors and Ctrl-C. With
``--url`` the role must be allowed to CREATE DATABASE: every measurement gets a
fresh database (``jobq_bench_<n>``), dropped afterwards.

Contestants, all with 4 handler threads:

- jobq on PostgreSQL: ``DurableQueue("postgresql://...")`` (``clock="database"``,
  its default pool of 1 to 10 connections), ``queue.start_workers(concurrency=4)``;
  pools LISTEN for the enqueue's NOTIFY and poll every 0.1 s as a fallback.
- jobq on SQLite, for reference: the same on a file, at ``synchronous=NORMAL``.
- Procrastinate: ``App(connector=PsycopgConnector(conninfo=url))`` with its schema
  applied, a sync task deferred with ``task.defer(i=...)`` / ``task.batch_defer(...)``
  through the sync connector (``app.open()``); the worker is ``run_worker(concurrency=4)``
  (sync tasks run in threads through asgiref) on a second App, with its defaults:
  ``listen_notify=True``, ``fetch_job_polling_interval=5.0`` s, ``delete_jobs="never"``,
  a pool of 4 connections. Throughput uses ``run_worker(wait=False)``, which returns
  once the queue is empty and the running jobs are finished; latency runs
  ``run_worker_async`` in a thread's event loop and cancels it at the end (its
  graceful stop).
- raw psycopg, the floor for one-by-one enqueues: one autocommit connection doing
  ``INSERT`` of the same row jobq stores into the same table (jobq's schema, with its
  indexes): one round trip and one commit (a WAL flush) per job, no RETURNING or NOTIFY.

Processes: "4 threads" runs in this process; "N processes" starts N copies of this
script (``--child``), each ``DurableQueue(url).start_workers(concurrency=4)``, starts
them together and measures from the first claim to the last completion, as the
server recorded them (``min(started_at)`` to ``max(finished_at)``). Pickup latency:
a child process enqueues with random 5-15 ms gaps, recording the wall time just
before each enqueue call; the handler records its own start time.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import logging
import os
import platform
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import same_sqlite

import jobq

try:
    import procrastinate
    import psycopg
    from psycopg import sql as pgsql

    from jobq.storage.postgres import PostgresStorage
except ImportError as exc:  # pragma: no cover - depends on the environment
    sys.exit(
        f"missing a library ({exc.name}); install with: pip install -e '.[postgres,bench]' "
        "procrastinate"
    )

THREADS = 4
TASK = "noop"
HEADER = (
    "workload",
    "jobq (PostgreSQL)",
    "jobq (SQLite NORMAL)",
    "Procrastinate",
    "raw psycopg",
    "goal",
    "met?",
)
COLUMNS = ("jobq-pg", "jobq-sqlite", "procrastinate", "raw")
PROCESS_COUNTS = (1, 2, 4)
RAW_INSERT = (
    "INSERT INTO jobq_jobs (queue, name, payload, priority, status, max_attempts, run_at, "
    "unique_key, created_at, updated_at) VALUES (%s, %s, %s, 0, 'pending', 3, %s, NULL, %s, %s)"
)


@dataclass(frozen=True)
class Settings:
    jobs: int  # jobs per enqueue / bulk / processing run
    rounds: int  # repeats of the throughput runs (medians reported)
    samples: int  # pickup-latency samples per contestant


FULL = Settings(jobs=10_000, rounds=3, samples=300)
QUICK = Settings(jobs=1_000, rounds=1, samples=40)


class Recorder:
    """What handlers report: the wall time each job started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.starts: dict[int, float] = {}

    def started(self, index: int) -> None:
        now = time.time()
        with self._lock:
            self.starts[index] = now
            self._changed.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._lock:
            return self._changed.wait_for(predicate, timeout)

    def wait_started(self, indexes: Sequence[int], timeout: float) -> bool:
        return self.wait(lambda: all(i in self.starts for i in indexes), timeout)

    def wait_count(self, count: int, timeout: float) -> bool:
        return self.wait(lambda: len(self.starts) >= count, timeout)


def payload(index: int) -> str:
    return json.dumps({"args": [index], "kwargs": {}}, separators=(",", ":"))


def done_timeout(count: int) -> float:
    return 120.0 + count / 20  # far above any contestant's pace; a hang fails loudly


# -- the PostgreSQL server ---------------------------------------------------------------


def postgres_programs() -> Path:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    sys.exit(
        "PostgreSQL's server programs (initdb, pg_ctl) are not installed; "
        "install them or pass --url"
    )


@contextmanager
def throwaway_server(base: str | None) -> Iterator[str]:
    """Start a PostgreSQL server with default settings in a temporary folder; yield the
    URL of its ``postgres`` database; stop it and delete the folder afterwards."""
    programs = postgres_programs()
    folder = tempfile.mkdtemp(prefix="jobq-bench-pg-", dir=base)
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        as_postgres = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, user="postgres")
    data = os.path.join(folder, "data")
    started = False
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # --no-sync: initdb does not flush the new cluster's files; the server still runs
        # with fsync=on. Only the address, port and socket folder are set.
        subprocess.run(
            [
                *as_postgres,
                str(programs / "initdb"),
                "-D",
                data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            start_new_session=True,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}"
        started = True
        subprocess.run(
            [
                *as_postgres,
                str(programs / "pg_ctl"),
                "-D",
                data,
                "-l",
                os.path.join(folder, "log"),
                "-w",
                "-s",
                "-o",
                options,
                "start",
            ],
            check=True,
            capture_output=True,
            start_new_session=True,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            subprocess.run(
                [*as_postgres, str(programs / "pg_ctl"), "-D", data, "-m", "fast", "-s", "stop"],
                capture_output=True,
                start_new_session=True,
                check=False,
            )
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def existing_server(url: str) -> Iterator[str]:
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit(f"--url takes a postgresql:// URL, got {url!r}")
    yield url


def with_database(url: str, name: str) -> str:
    """The URL with another database name (the path), keeping its query parameters."""
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path="/" + name))


class Server:
    """Fresh databases on one server, each dropped after its measurement."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = psycopg.connect(url, autocommit=True)
        self._count = 0
        self._prefix = f"jobq_bench_{os.getpid()}_"

    def setting(self, name: str) -> str:
        row = self.admin.execute(pgsql.SQL("SHOW {}").format(pgsql.Identifier(name))).fetchone()
        return str(row[0]) if row else "?"

    @contextmanager
    def database(self) -> Iterator[str]:
        self._count += 1
        name = f"{self._prefix}{self._count}"
        self.admin.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
        try:
            yield with_database(self.url, name)
        finally:
            self.admin.execute(
                pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name))
            )

    def close(self) -> None:
        self.admin.close()


# -- contestants -------------------------------------------------------------------------


class Contestant:
    """One library on one fresh database, with 4 handler threads once started."""

    column: str

    def __init__(self) -> None:
        self.recorder = Recorder()

    def enqueue(self, index: int) -> None:
        raise NotImplementedError

    def enqueue_bulk(self, count: int) -> None:
        raise NotImplementedError

    def process(self, count: int) -> float:
        """Process the ``count`` jobs enqueued; return jobs/s from start to all recorded."""
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def child_target(self) -> dict[str, str]:
        raise NotImplementedError


class JobqContestant(Contestant):
    def __init__(self, column: str, location: str, target: dict[str, str]) -> None:
        super().__init__()
        self.column = column
        self.location = location
        self.target = target
        self.queue = jobq.DurableQueue(location)
        recorder = self.recorder

        def noop(i: int) -> None:
            recorder.started(i)

        self.task = self.queue.task(TASK)(noop)
        self.pool: Any = None

    def enqueue(self, index: int) -> None:
        self.task.enqueue(index)

    def enqueue_bulk(self, count: int) -> None:
        self.task.enqueue_many([(i,) for i in range(count)])

    def unfinished(self) -> int:
        statement = "SELECT count(*) FROM {} WHERE status IN ('pending', 'processing')"
        if self.column == "jobq-pg":
            with psycopg.connect(self.location) as conn:
                row = conn.execute(statement.format("jobq_jobs")).fetchone()
        else:
            conn = same_sqlite.connect(self.location)
            try:
                row = conn.execute(statement.format("jobs")).fetchone()
            finally:
                conn.close()
        return int(row[0]) if row else 0

    def process(self, count: int) -> float:
        started = time.perf_counter()
        self.start()
        deadline = time.monotonic() + done_timeout(count)
        if not self.recorder.wait_count(count, done_timeout(count)):
            raise RuntimeError(f"{self.column}: the {count} jobs did not all run")
        while self.unfinished():  # every handler ran: wait for the completions' commit
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.column}: the {count} jobs were not all completed")
            time.sleep(0.001)
        rate = count / (time.perf_counter() - started)
        self.stop()
        return rate

    def start(self) -> None:
        self.pool = self.queue.start_workers(concurrency=THREADS)

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.stop(timeout=10.0)
            self.pool = None

    def close(self) -> None:
        self.stop()
        self.queue.close()

    def child_target(self) -> dict[str, str]:
        return self.target


def make_procrastinate_app(url: str, recorder: Recorder | None) -> tuple[Any, Any]:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name=TASK)
    def noop(i: int) -> None:
        if recorder is not None:
            recorder.started(i)

    return app, noop


class ProcrastinateContestant(Contestant):
    column = "procrastinate"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        # One app defers (sync connector, opened here), another runs the worker (async).
        self.app, self.task = make_procrastinate_app(url, None)
        self.app.open()
        self.app.schema_manager.apply_schema()
        self.worker_app, _ = make_procrastinate_app(url, self.recorder)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    def enqueue(self, index: int) -> None:
        self.task.defer(i=index)

    def enqueue_bulk(self, count: int) -> None:
        self.task.batch_defer(*({"i": i} for i in range(count)))

    def count_succeeded(self) -> int:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
            ).fetchone()
        return int(row[0]) if row else 0

    def process(self, count: int) -> float:
        started = time.perf_counter()
        self.worker_app.run_worker(concurrency=THREADS, wait=False, install_signal_handlers=False)
        rate = count / (time.perf_counter() - started)
        done = self.count_succeeded()
        if done != count:
            raise RuntimeError(f"procrastinate: {done} of {count} jobs succeeded")
        return rate

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def main() -> None:
            async with self.worker_app.open_async():
                ready.set()
                await self.worker_app.run_worker_async(
                    concurrency=THREADS, install_signal_handlers=False
                )

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._main = loop.create_task(main())
            try:
                loop.run_until_complete(self._main)
            except asyncio.CancelledError:
                pass
            except BaseException as exc:  # reported by stop()
                self._failure = exc
                ready.set()
            finally:
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="procrastinate-worker", daemon=True)
        self._thread.start()
        if not ready.wait(30.0):
            raise RuntimeError("procrastinate: the worker did not start")

    def stop(self) -> None:
        thread, loop, main = self._thread, self._loop, self._main
        self._thread = None
        if thread is None or loop is None:
            return
        if main is not None:
            with suppress(RuntimeError):  # the loop may be closed already
                loop.call_soon_threadsafe(main.cancel)
        thread.join(30.0)
        if self._failure is not None:
            raise RuntimeError(f"procrastinate worker failed: {self._failure!r}")

    def close(self) -> None:
        self.stop()
        self.app.close()

    def child_target(self) -> dict[str, str]:
        return {"kind": "procrastinate", "url": self.url}


class RawContestant(Contestant):
    """INSERT of jobq's row into jobq's table, one autocommit statement per job."""

    column = "raw"

    def __init__(self, url: str) -> None:
        super().__init__()
        PostgresStorage(url).close()  # jobq's schema
        self.conn = psycopg.connect(url, autocommit=True)

    def enqueue(self, index: int) -> None:
        now = time.time()
        self.conn.execute(RAW_INSERT, ("default", TASK, payload(index), now, now, now))

    def close(self) -> None:
        self.conn.close()


class Workspace:
    """Where contestants get their fresh databases: server databases and SQLite folders."""

    def __init__(self, server: Server, base: str | None) -> None:
        self.server = server
        self.root = Path(tempfile.mkdtemp(prefix="jobq-bench-postgres-", dir=base))
        self._count = 0

    @contextmanager
    def contestant(self, column: str) -> Iterator[Contestant]:
        made: Contestant | None = None
        if column == "jobq-sqlite":
            self._count += 1
            folder = self.root / f"run{self._count}"
            folder.mkdir()
            path = str(folder / "jobq.db")
            try:
                made = JobqContestant(column, path, {"kind": "jobq", "url": path})
                yield made
            finally:
                if made is not None:
                    made.close()
                shutil.rmtree(folder, ignore_errors=True)
            return
        with self.server.database() as url:
            try:
                if column == "jobq-pg":
                    made = JobqContestant(column, url, {"kind": "jobq", "url": url})
                elif column == "procrastinate":
                    made = ProcrastinateContestant(url)
                else:
                    made = RawContestant(url)
                yield made
            finally:
                if made is not None:
                    made.close()

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# -- child processes ---------------------------------------------------------------------


def child_enqueue(spec: dict[str, Any]) -> None:
    """Enqueue ``count`` jobs with random gaps, printing the wall time taken just before
    each enqueue call as JSON."""
    target = spec["target"]
    enqueue: Callable[[int], Any]
    if target["kind"] == "procrastinate":
        app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=target["url"]))
        app.open()
        deferrer = app.configure_task(name=TASK)

        def enqueue(i: int) -> Any:
            return deferrer.defer(i=i)
    else:
        queue = jobq.DurableQueue(target["url"])

        def noop(i: int) -> None:
            raise AssertionError("runs in the parent only")

        enqueue = queue.task(TASK)(noop).enqueue
    enqueue(-1)  # warm: connections open, statements prepared (the parent ignores it)
    rng = random.Random(spec["seed"])
    low, high = spec["gap"]
    times: list[float] = []
    returned: list[float] = []
    for index in range(spec["count"]):
        time.sleep(rng.uniform(low, high))
        times.append(time.time())
        enqueue(index)
        returned.append(time.time())
    print(json.dumps({"sent": times, "returned": returned}), flush=True)


def child_workers(spec: dict[str, Any]) -> None:
    """A worker process: open the queue, say "ready", start its pool on "go" (a line on
    stdin), stop it when stdin closes."""
    queue = jobq.DurableQueue(spec["url"])

    def noop(i: int) -> None:
        pass

    queue.task(TASK)(noop)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        queue.close()
        return
    pool = queue.start_workers(concurrency=spec["threads"])
    sys.stdin.read()  # until the parent closes it
    pool.stop(timeout=10.0)
    queue.close()


def child_main(spec_text: str) -> None:
    spec = json.loads(spec_text)
    if spec["role"] == "enqueue":
        child_enqueue(spec)
    else:
        child_workers(spec)


def child_command(spec: dict[str, Any]) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]


def run_enqueuer(target: dict[str, str], count: int, seed: int) -> tuple[list[float], list[float]]:
    """The wall times just before and just after each enqueue call of a child process."""
    spec = {
        "role": "enqueue",
        "target": target,
        "count": count,
        "gap": (0.005, 0.015),
        "seed": seed,
    }
    done = subprocess.run(
        child_command(spec),
        capture_output=True,
        text=True,
        timeout=60.0 + count * 0.05,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the enqueueing child failed ({done.returncode}):\n{done.stderr}")
    times: dict[str, list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return times["sent"], times["returned"]


# -- measurements ------------------------------------------------------------------------


@dataclass
class Results:
    enqueue_rate: dict[str, list[float]] = field(default_factory=dict)  # jobs/s
    bulk_ms: dict[str, list[float]] = field(default_factory=dict)
    process_rate: dict[str, list[float]] = field(default_factory=dict)  # jobs/s
    processes_rate: dict[int, list[float]] = field(default_factory=dict)  # jobq-pg, jobs/s
    latency: dict[str, list[float]] = field(default_factory=dict)  # ms
    after_commit: dict[str, list[float]] = field(default_factory=dict)  # ms, from the return

    def add(self, table: dict[Any, list[float]], key: Any, value: float) -> None:
        table.setdefault(key, []).append(value)


def enqueue_and_process(
    workspace: Workspace, column: str, settings: Settings, results: Results
) -> None:
    n = settings.jobs
    with workspace.contestant(column) as c:
        started = time.perf_counter()
        for index in range(n):
            c.enqueue(index)
        results.add(results.enqueue_rate, column, n / (time.perf_counter() - started))
        if column != "raw":
            results.add(results.process_rate, column, c.process(n))


def bulk(workspace: Workspace, column: str, settings: Settings, results: Results) -> None:
    with workspace.contestant(column) as c:
        started = time.perf_counter()
        c.enqueue_bulk(settings.jobs)
        results.add(results.bulk_ms, column, (time.perf_counter() - started) * 1000)


def several_processes(server: Server, processes: int, settings: Settings, results: Results) -> None:
    """``processes`` worker processes with 4 threads each on ``settings.jobs`` jobs enqueued
    in bulk; jobs/s from the first claim to the last completion, by the server's clock."""
    n = settings.jobs
    with server.database() as url:
        queue = jobq.DurableQueue(url)
        queue.enqueue_many(queue.task(TASK)(lambda i: None), [(i,) for i in range(n)])
        queue.close()
        spec = {"role": "workers", "url": url, "threads": THREADS}
        children: list[subprocess.Popen[str]] = []
        try:
            for _ in range(processes):
                children.append(
                    subprocess.Popen(
                        child_command(spec),
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                )
            for child in children:
                assert child.stdout is not None
                if child.stdout.readline().strip() != "ready":
                    raise RuntimeError("a worker process did not start")
            for child in children:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            deadline = time.monotonic() + done_timeout(n)
            with psycopg.connect(url, autocommit=True) as conn:
                while True:
                    row = conn.execute(
                        "SELECT count(*) FILTER (WHERE status = 'completed'), min(started_at), "
                        "max(finished_at) FROM jobq_jobs"
                    ).fetchone()
                    assert row is not None
                    if row[0] == n:
                        break
                    if time.monotonic() > deadline or any(c.poll() is not None for c in children):
                        raise RuntimeError(
                            f"{processes} processes: only {row[0]} of {n} jobs completed"
                        )
                    time.sleep(0.01)
            results.add(results.processes_rate, processes, n / (row[2] - row[1]))
        finally:
            stop_children(children)


def stop_children(children: list[subprocess.Popen[str]]) -> None:
    for child in children:
        if child.stdin is not None:
            with suppress(OSError):
                child.stdin.close()
    for child in children:
        try:
            child.wait(20.0)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


WARM_UP = 1_000_000  # job index of the parent's warm-up job


def pickup(
    workspace: Workspace, column: str, settings: Settings, results: Results, seed: int
) -> None:
    with workspace.contestant(column) as c:
        c.start()
        try:
            # One job through the started workers, so connections are open, threads waiting.
            if isinstance(c, ProcrastinateContestant):
                c.task.defer(i=WARM_UP)
            else:
                c.enqueue(WARM_UP)
            if not c.recorder.wait_started([WARM_UP], 30.0):
                raise RuntimeError(f"{column}: the warm-up job never ran")
            time.sleep(0.2)
            sent, returned = run_enqueuer(c.child_target(), settings.samples, seed)
            indexes = range(len(sent))
            if not c.recorder.wait_started(indexes, 30.0):
                missing = [i for i in indexes if i not in c.recorder.starts]
                raise RuntimeError(f"{column}: {len(missing)} latency jobs never ran")
            results.latency[column] = [
                (c.recorder.starts[i] - t) * 1000 for i, t in zip(indexes, sent, strict=True)
            ]
            results.after_commit[column] = [
                (c.recorder.starts[i] - t) * 1000 for i, t in zip(indexes, returned, strict=True)
            ]
        finally:
            c.stop()


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


def median(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None


def yes_no(ok: bool | None, detail: str = "") -> str:
    if ok is None:
        return "-"
    text = "yes" if ok else "no"
    return f"{text} ({detail})" if detail else text


def build_table(results: Results, settings: Settings) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    k = f"{settings.jobs // 1000}k" if settings.jobs >= 1000 else str(settings.jobs)

    def cells(values: dict[str, float | None]) -> list[str]:
        return [fmt(values.get(col)) for col in COLUMNS]

    enq = {col: median(v) for col, v in results.enqueue_rate.items()}
    jobq_rate, raw_rate = enq.get("jobq-pg"), enq.get("raw")
    ok = detail = None
    if jobq_rate and raw_rate:
        ok, detail = jobq_rate >= raw_rate / 1.2, f"{jobq_rate / raw_rate:.2f}x raw"
    rows.append(
        (f"enqueue {k} one by one (jobs/s)", *cells(enq), ">= raw / 1.2", yes_no(ok, detail or ""))
    )

    bulk_ms = {col: median(v) for col, v in results.bulk_ms.items()}
    value = bulk_ms.get("jobq-pg")
    rows.append(
        (
            f"enqueue {k} in bulk (ms)",
            *cells(bulk_ms),
            "< 100 ms",
            yes_no(None if value is None else value < 100),
        )
    )

    rate = {col: median(v) for col, v in results.process_rate.items()}
    jobq_rate, peer = rate.get("jobq-pg"), rate.get("procrastinate")
    ok = detail = None
    if jobq_rate and peer:
        ok, detail = jobq_rate >= 20 * peer, f"{jobq_rate / peer:.1f}x"
    rows.append(
        (
            f"process {k} no-op, 4 threads (jobs/s)",
            *cells(rate),
            ">= 20x Procrastinate",
            yes_no(ok, detail or ""),
        )
    )

    for count in PROCESS_COUNTS:
        value = median(results.processes_rate.get(count))
        label = "process" if count == 1 else "processes"
        rows.append(
            (
                f"process {k}, {count} {label} x 4 threads (jobs/s)",
                *cells({"jobq-pg": value}),
                "-",
                "-",
            )
        )

    p50 = {col: percentile(v, 0.50) for col, v in results.latency.items()}
    p99 = {col: percentile(v, 0.99) for col, v in results.latency.items()}
    rows.append(("pickup p50, other process (ms)", *cells(p50), "-", "-"))
    value = p99.get("jobq-pg")
    rows.append(
        (
            "pickup p99, other process (ms)",
            *cells(p99),
            "< 5 ms",
            yes_no(None if value is None else value < 5),
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


def print_environment(settings: Settings, server: Server, where: str) -> None:
    print(
        f"python {platform.python_version()} | jobq {version('jobq')} | "
        f"psycopg {version('psycopg')} | psycopg_pool {version('psycopg-pool')} | "
        f"procrastinate {version('procrastinate')} | SQLite {sqlite3.sqlite_version}"
    )
    print(f"{platform.platform()} | {os.cpu_count()} CPUs")
    settings_shown = ", ".join(
        f"{name}={server.setting(name)}"
        for name in (
            "fsync",
            "synchronous_commit",
            "wal_sync_method",
            "shared_buffers",
            "max_connections",
        )
    )
    print(f"PostgreSQL {server.setting('server_version')} ({where}): {settings_shown}")
    print(
        f"{settings.jobs:,} jobs per run, {settings.rounds} round(s) (medians), "
        f"{settings.samples} latency samples each; 4 handler threads per process"
    )


# -- main --------------------------------------------------------------------------------


_began = time.monotonic()


def step(text: str) -> None:
    print(f"[{time.monotonic() - _began:6.1f} s] {text}", file=sys.stderr, flush=True)


def run(server: Server, settings: Settings, base: str | None) -> Results:
    results = Results()
    workspace = Workspace(server, base)
    try:
        for index in range(settings.rounds):
            order = COLUMNS[index % 4 :] + COLUMNS[: index % 4]
            for column in order:
                step(f"round {index + 1}: enqueue one by one + process, {column}")
                enqueue_and_process(workspace, column, settings, results)
                if column != "raw":
                    step(f"round {index + 1}: bulk enqueue, {column}")
                    bulk(workspace, column, settings, results)
            for processes in PROCESS_COUNTS:
                step(f"round {index + 1}: jobq, {processes} worker process(es)")
                several_processes(server, processes, settings, results)
        for seed, column in enumerate(("jobq-pg", "jobq-sqlite", "procrastinate")):
            step(f"pickup latency, {column}")
            pickup(workspace, column, settings, results, seed)
    finally:
        workspace.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small run (~30 s) to check it works")
    parser.add_argument(
        "--url",
        default=None,
        help="an existing server (a role that may CREATE DATABASE); default: "
        "start a throwaway server with default settings",
    )
    parser.add_argument("--jobs", type=int, default=None, help="jobs per throughput run")
    parser.add_argument("--rounds", type=int, default=None, help="repeats of those runs")
    parser.add_argument("--dir", default=None, help="where the temporary files go")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child_main(args.child)
        return 0
    settings = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    if args.jobs is not None:
        changes["jobs"] = args.jobs
    if args.rounds is not None:
        changes["rounds"] = args.rounds
    if changes:
        settings = Settings(**{**settings.__dict__, **changes})

    # Procrastinate warns that an App made in __main__ cannot be imported by a worker
    # process; its workers here run in this process, with the tasks registered.
    logging.getLogger("procrastinate.blueprints").addFilter(
        lambda record: getattr(record, "action", None) != "app_defined_in___main__"
    )

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through the cleanups

    signal.signal(signal.SIGTERM, terminate)
    # Whatever hangs, the benchmark ends: dump every thread's stack and exit.
    faulthandler.dump_traceback_later(1800.0, exit=True)
    try:
        with throwaway_server(args.dir) if args.url is None else existing_server(args.url) as url:
            step("server up" if args.url is None else "using the server given")
            server = Server(url)
            try:
                print_environment(
                    settings,
                    server,
                    "throwaway, default settings" if args.url is None else "the server given",
                )
                results = run(server, settings, args.dir)
            finally:
                server.close()
    finally:
        faulthandler.cancel_dump_traceback_later()
    print()
    print_table(build_table(results, settings))
    return 0


if __name__ == "__main__":
    with suppress(BrokenPipeError):
        sys.exit(main())
