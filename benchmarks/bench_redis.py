"""jobq on Redis against RQ, Huey's RedisHuey, Celery (Redis broker) and the raw limit
of Redis itself, in one run on one throwaway server.

Run from the repository root (needs the ``redis`` and ``bench`` extras and
``redis-server`` on the PATH)::

    pip install -e ".[redis,bench]"
    python benchmarks/bench_redis.py             # full run, about 3 minutes
    python benchmarks/bench_redis.py --quick     # 1,000 jobs, to check it runs
    python benchmarks/bench_redis.py --jobs 2000 --samples 100 --no-celery

It starts a throwaway ``redis-server`` on a free port of 127.0.0.1 in a temporary
folder with persistence off (no RDB snapshots, no append-only file), and a second one
with ``appendonly yes`` and ``appendfsync always`` for one row (enqueue one by one,
fewer jobs: each write waits for an fsync). Both are stopped and their folders deleted
at the end, also on errors, Ctrl-C and SIGTERM. Every measurement starts from an
empty database (``FLUSHALL``).

Contestants (the table's columns):

- ``jobq``: ``DurableQueue("redis://...?durability=ignore")``; workers are
  ``start_workers(concurrency=4)`` in one process, or four processes with
  ``start_workers(concurrency=1)``; idle pools are woken through Redis pub/sub.
- ``RQ``: ``Queue.enqueue`` and ``Queue.enqueue_many``; its default ``Worker``, which
  forks a work horse per job, and ``SimpleWorker``, which runs jobs in the worker
  process; both in burst mode, four worker processes (RQ has no threads). A job is
  done once in RQ's finished registry.
- ``Huey``: ``RedisHuey`` (``store_none=True``, so each job's end is counted in its
  result store) with its own consumer, ``workers=4`` of ``worker_type`` thread or
  process. No bulk call (one task call per job).
- ``Celery``: Redis broker, no result backend; a worker with ``--pool threads`` or
  ``prefork``, ``-c 4``, default prefetch; it starts on an idle queue and the clock
  starts when it is told to consume the jobs' queue (``add_consumer``). Its no-op
  task counts itself with one ``INCR`` (its only way to tell completion here).
- ``raw``: what Redis itself allows: one ``EVALSHA`` round trip per job (a script
  doing one ``LPUSH``), a pipelined ``LPUSH`` for bulk, and one thread moving jobs
  with pipelined ``LMOVE`` (100 per round trip) then ``LREM`` (a reliable queue's
  least work per job, no Python per job beyond the client).

Workloads (``--jobs``, default 10,000 jobs):

1. enqueue one by one from one thread, jobs/s; also on the ``appendfsync always``
   server (jobq and raw, 1,000 jobs);
2. enqueue in bulk, ms;
3. process no-op jobs with 4 threads in one process (enqueued in bulk before), from
   the go to the last completion as the library records it, jobs/s;
4. the same with 4 processes;
5. jobq only: pickup p50/p99 from another process: an idle pool of 4 threads,
   ``--samples`` jobs enqueued one at a time by a child process with random 5-15 ms
   gaps, from the wall time just before the enqueue call to the handler's start.

Compare the columns of one run: the server shares the machine's CPUs with the
contestants, so on a small machine throughput rows measure contention too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import jobq

try:
    import redis
    import rq
    from huey import RedisHuey  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - depends on the environment
    sys.exit(
        f"missing a peer library ({exc.name}); install them with: pip install -e '.[redis,bench]'"
    )

THREADS = 4
PROCESSES = 4
TASK = "noop"
QUEUE = "default"
PREFIX = "jobq:"
RAW_BATCH = 100
GAP = (0.005, 0.015)
FSYNC_JOBS = 1_000
COLUMNS = ("jobq", "rq", "rq-simple", "huey", "celery", "raw")
TITLES = {
    "jobq": "jobq",
    "rq": "RQ (Worker, fork)",
    "rq-simple": "RQ (SimpleWorker)",
    "huey": "Huey (RedisHuey)",
    "celery": "Celery",
    "raw": "raw Redis",
}
HEADER = ("workload", *(TITLES[c] for c in COLUMNS), "goal", "met?")


@dataclass(frozen=True)
class Settings:
    jobs: int
    samples: int
    celery: bool = True


FULL = Settings(10_000, 300)
QUICK = Settings(1_000, 40)


# -- the throwaway servers ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server(folder: Path, *, fsync_always: bool = False) -> Iterator[str]:
    """A redis-server of our own on a free port; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on the PATH (Debian: apt-get install redis-server)")
    folder.mkdir()
    port = free_port()
    persistence = (
        ["--appendonly", "yes", "--appendfsync", "always"]
        if fsync_always
        else ["--appendonly", "no"]
    )
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--save", "", *persistence, "--logfile", str(folder / "redis.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10.0
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        client.close()
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10.0)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# -- the tasks, importable by every contestant's worker processes ----------------------------


def noop(i: int) -> None:
    """The job: nothing (RQ finds it as ``bench_redis.noop``)."""


def make_huey(url: str) -> tuple[Any, Any]:
    huey = RedisHuey("bench", url=url, store_none=True)
    return huey, huey.task(name=TASK)(noop)


def make_celery(url: str) -> Any:
    from celery import Celery  # type: ignore[import-untyped]

    app = Celery("bench", broker=url)
    app.conf.update(
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        task_default_queue=QUEUE,
    )
    clients: dict[int, Any] = {}

    @app.task(name=TASK)
    def counted(i: int) -> None:
        client = clients.get(os.getpid())
        if client is None:
            client = clients[os.getpid()] = redis.Redis.from_url(url)
        client.incr("bench:celery:done")

    return app


def jobq_url(url: str) -> str:
    """jobq's URL for the server: its key prefix, and no warning about persistence
    (the server runs without it on purpose)."""
    return f"{url}?prefix={PREFIX}&durability=ignore"


def jobq_queue(url: str) -> tuple[jobq.DurableQueue, Any]:
    queue = jobq.DurableQueue(jobq_url(url))
    return queue, queue.task(TASK)(noop)


# -- child processes: workers and the pickup enqueuer ----------------------------------------


def child_command(spec: dict[str, Any]) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]


def child_main(raw_spec: str) -> None:
    spec = json.loads(raw_spec)
    if spec["role"] == "enqueue":
        child_enqueue(spec)
        return
    lib, url, threads = spec["lib"], spec["url"], spec["threads"]
    if lib == "jobq":
        queue, _ = jobq_queue(url)
        ready_then_go()
        pool = queue.start_workers(concurrency=threads)
        sys.stdin.read()  # until the parent closes it
        pool.stop(10.0)
        queue.close()
    elif lib in ("rq", "rq-simple"):
        sys.modules.setdefault("bench_redis", sys.modules["__main__"])  # no import per job
        conn = redis.Redis.from_url(url)
        worker_class = rq.SimpleWorker if lib == "rq-simple" else rq.Worker
        worker = worker_class([rq.Queue(QUEUE, connection=conn)], connection=conn)
        ready_then_go()
        worker.work(burst=True, logging_level="WARNING")
    elif lib == "huey":
        huey, _ = make_huey(url)
        kind = "thread" if spec["kind"] == "threads" else "process"
        consumer = huey.create_consumer(
            workers=threads, worker_type=kind, periodic=False, check_worker_health=False
        )
        ready_then_go()
        consumer.run()  # the parent ends it with SIGTERM
    elif lib == "celery":
        app = make_celery(url)
        pool = "threads" if spec["kind"] == "threads" else "prefork"
        from celery import signals  # type: ignore[import-untyped]

        signals.worker_ready.connect(lambda **_: print("ready", flush=True), weak=False)
        app.worker_main(
            ["worker", "-P", pool, "-c", str(threads), "-Q", "idle", "-l", "WARNING",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", "bench@%h"]
        )  # fmt: skip
    else:
        raise ValueError(lib)


def ready_then_go() -> None:
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit(0)


def child_enqueue(spec: dict[str, Any]) -> None:
    """Enqueue ``count`` jobs with random gaps; print the wall times just before each."""
    queue, task = jobq_queue(spec["url"])
    rng = random.Random(spec["seed"])
    sent: list[float] = []
    task.enqueue(-2)  # warm up: connection open, scripts loaded
    for i in range(spec["count"]):
        time.sleep(rng.uniform(*GAP))
        sent.append(time.time())
        task.enqueue(i)
    queue.close()
    print(json.dumps(sent), flush=True)


# -- measurements -----------------------------------------------------------------------------


@dataclass
class Results:
    one_by_one: dict[str, float] = field(default_factory=dict)  # jobs/s
    fsync_one_by_one: dict[str, float] = field(default_factory=dict)  # jobs/s
    bulk_ms: dict[str, float] = field(default_factory=dict)
    threads: dict[str, float] = field(default_factory=dict)  # jobs/s
    processes: dict[str, float] = field(default_factory=dict)  # jobs/s
    latency: list[float] = field(default_factory=list)  # ms


class Peers:
    """Enqueueing for each contestant, on the server at ``url``; and how many of its
    jobs are done, as the library itself records it."""

    def __init__(self, url: str, celery: bool) -> None:
        self.url = url
        self.client = redis.Redis.from_url(url)
        self.raw_push = self.client.register_script("return redis.call('LPUSH', KEYS[1], ARGV[1])")
        self.celery = make_celery(url) if celery else None

    def flush(self) -> None:
        self.client.flushall()

    def one_by_one(self, lib: str, n: int) -> float:
        """Enqueue ``n`` jobs one call each; seconds taken."""
        if lib == "jobq":
            queue, task = jobq_queue(self.url)
            started = time.perf_counter()
            for i in range(n):
                task.enqueue(i)
            took = time.perf_counter() - started
            queue.close()
        elif lib == "rq":
            q = rq.Queue(QUEUE, connection=self.client)
            started = time.perf_counter()
            for i in range(n):
                q.enqueue("bench_redis.noop", i)
            took = time.perf_counter() - started
        elif lib == "huey":
            _, task = make_huey(self.url)
            started = time.perf_counter()
            for i in range(n):
                task(i)
            took = time.perf_counter() - started
        elif lib == "celery":
            assert self.celery is not None
            noop_task = self.celery.tasks[TASK]
            noop_task.delay(-1)  # connect first, as the others did at construction
            self.flush()
            started = time.perf_counter()
            for i in range(n):
                noop_task.delay(i)
            took = time.perf_counter() - started
        elif lib == "raw":
            started = time.perf_counter()
            for i in range(n):
                self.raw_push(keys=["raw:queue"], args=[json.dumps({"i": i})])
            took = time.perf_counter() - started
        else:
            raise ValueError(lib)
        return took

    def bulk(self, lib: str, n: int) -> float | None:
        """Enqueue ``n`` jobs in the library's bulk call; seconds, or None without one."""
        if lib == "jobq":
            queue, task = jobq_queue(self.url)
            calls = [(i,) for i in range(n)]
            started = time.perf_counter()
            queue.enqueue_many(task, calls)
            took = time.perf_counter() - started
            queue.close()
            return took
        if lib in ("rq", "rq-simple"):
            q = rq.Queue(QUEUE, connection=self.client)
            started = time.perf_counter()
            q.enqueue_many([rq.Queue.prepare_data("bench_redis.noop", (i,)) for i in range(n)])
            return time.perf_counter() - started
        if lib == "raw":
            started = time.perf_counter()
            pipe = self.client.pipeline(transaction=False)
            for i in range(n):
                pipe.lpush("raw:queue", json.dumps({"i": i}))
            pipe.execute()
            return time.perf_counter() - started
        # Huey and Celery: no bulk call; the jobs still go in, one call each.
        self.one_by_one(lib, n)
        return None

    def done(self, lib: str) -> int:
        if lib == "jobq":
            return int(self.client.hget(f"{PREFIX}counts:{QUEUE}", "completed") or 0)
        if lib in ("rq", "rq-simple"):
            return int(self.client.zcard(f"rq:finished:{QUEUE}"))
        if lib == "huey":
            return int(self.client.hlen("huey.results.bench"))
        if lib == "celery":
            return int(self.client.get("bench:celery:done") or 0)
        raise ValueError(lib)

    def close(self) -> None:
        self.client.close()


def processing(peers: Peers, lib: str, kind: str, n: int) -> float:
    """Jobs/s of ``lib``'s workers on the ``n`` jobs waiting: 4 threads in one
    process, or 4 processes (``kind``), from the go to the last completion."""
    if lib == "raw":
        return n / raw_processing(peers.client, n)
    count, threads = (1, THREADS) if kind == "threads" else (PROCESSES, 1)
    if lib == "huey":  # its consumer runs the 4 processes itself
        count, threads = 1, THREADS
    if lib == "celery":
        count, threads = 1, THREADS
    spec = {"role": "workers", "lib": lib, "url": peers.url, "threads": threads, "kind": kind}
    children = [
        subprocess.Popen(
            child_command(spec),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for _ in range(count)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            for line in child.stdout:  # Celery prints its banner first
                if line.strip() == "ready":
                    break
            else:
                raise RuntimeError(f"{lib}: a worker process did not start")
        started = time.perf_counter()
        if lib == "celery":
            assert peers.celery is not None
            # Ready is said before its control channel listens: ask until it answers.
            while not peers.celery.control.add_consumer(QUEUE, reply=True, timeout=1.0):
                started = time.perf_counter()
        else:
            for child in children:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
        deadline = time.monotonic() + 60.0 + n / 20
        while (finished := peers.done(lib)) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{lib} ({kind}): only {finished} of {n} jobs done")
            if lib not in ("rq", "rq-simple") and any(c.poll() is not None for c in children):
                raise RuntimeError(f"{lib} ({kind}): a worker process ended early")
            time.sleep(0.005)
        return n / (time.perf_counter() - started)
    finally:
        stop_children(children, lib)


def stop_children(children: list[subprocess.Popen[str]], lib: str) -> None:
    for child in children:
        if lib in ("huey", "celery") and child.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
        if child.stdin is not None:
            with suppress(OSError):
                child.stdin.close()
    for child in children:
        try:
            child.wait(20.0)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def raw_processing(client: Any, n: int) -> float:
    """One thread takes the ``n`` jobs off ``raw:queue`` into a processing list and
    removes them from it: pipelined ``LMOVE`` then ``LREM``, 100 jobs per round trip."""
    started = time.perf_counter()
    taken = 0
    while taken < n:
        pipe = client.pipeline(transaction=False)
        for _ in range(min(RAW_BATCH, n - taken)):
            pipe.lmove("raw:queue", "raw:processing", "RIGHT", "LEFT")
        jobs = [job for job in pipe.execute() if job is not None]
        pipe = client.pipeline(transaction=False)
        for job in jobs:
            json.loads(job)
            pipe.lrem("raw:processing", 1, job)
        pipe.execute()
        taken += len(jobs)
    return time.perf_counter() - started


def pickup(url: str, samples: int, seed: int) -> list[float]:
    """Latencies (ms) of jobs enqueued by another process to an idle pool here."""
    queue = jobq.DurableQueue(jobq_url(url))
    starts: dict[int, float] = {}
    changed = threading.Condition()

    def record(i: int) -> None:
        now = time.time()
        with changed:
            starts[i] = now
            changed.notify_all()

    queue.task(TASK)(record)
    pool = queue.start_workers(concurrency=THREADS)
    try:
        spec = {"role": "enqueue", "url": url, "count": samples, "seed": seed}
        done = subprocess.run(
            child_command(spec), capture_output=True, text=True, timeout=60 + samples * 0.1
        )
        if done.returncode != 0:
            raise RuntimeError(f"the enqueueing child failed:\n{done.stderr}")
        sent: list[float] = json.loads(done.stdout.strip().splitlines()[-1])
        with changed:
            if not changed.wait_for(lambda: all(i in starts for i in range(samples)), 30.0):
                raise RuntimeError("pickup: jobs never ran")
        return [(starts[i] - t) * 1000 for i, t in enumerate(sent)]
    finally:
        pool.stop(10.0)
        queue.close()


# -- the run ----------------------------------------------------------------------------------

_began = time.monotonic()


def step(text: str) -> None:
    print(f"[{time.monotonic() - _began:6.1f} s] {text}", file=sys.stderr, flush=True)


def run(url: str, fsync_url: str, s: Settings) -> Results:
    results = Results()
    peers = Peers(url, s.celery)
    fsync_peers = Peers(fsync_url, celery=False)
    libs = [c for c in COLUMNS if s.celery or c != "celery"]
    try:
        # raw first, jobq next: before the peers' clients start threads of their own
        # (Celery's do) that would share this process's interpreter lock.
        for lib in ["raw", *(c for c in libs if c != "raw")]:
            if lib == "rq-simple":
                continue  # enqueueing is RQ's, whichever worker runs the jobs
            step(f"enqueue {s.jobs:,} one by one: {lib}")
            peers.flush()
            results.one_by_one[lib] = s.jobs / peers.one_by_one(lib, s.jobs)
        fsync_jobs = min(s.jobs, FSYNC_JOBS)
        for lib in ("jobq", "raw"):
            step(f"enqueue {fsync_jobs:,} one by one, appendfsync always: {lib}")
            fsync_peers.flush()
            results.fsync_one_by_one[lib] = fsync_jobs / fsync_peers.one_by_one(lib, fsync_jobs)
        for kind in ("threads", "processes"):
            for lib in libs:
                if lib == "raw" and kind == "processes":
                    continue
                step(f"bulk {s.jobs:,} + process with 4 {kind}: {lib}")
                peers.flush()
                took = peers.bulk(lib, s.jobs)
                if took is not None and kind == "threads":
                    results.bulk_ms[lib] = took * 1000
                table = results.threads if kind == "threads" else results.processes
                if lib in ("rq", "rq-simple") and kind == "threads":
                    continue  # RQ runs jobs in processes only
                table[lib] = processing(peers, lib, kind, s.jobs)
        step(f"pickup from another process, {s.samples} samples: jobq")
        peers.flush()
        results.latency = pickup(url, s.samples, seed=1)
    finally:
        peers.close()
        fsync_peers.close()
    return results


# -- report -----------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def verdict(ok: bool | None, detail: str = "") -> str:
    if ok is None:
        return "-"
    return ("yes" if ok else "no") + (f" ({detail})" if detail else "")


def ratio_check(values: dict[str, float], peer: str, times: float) -> tuple[bool | None, str]:
    mine, theirs = values.get("jobq"), values.get(peer)
    if not mine or not theirs:
        return None, ""
    return mine >= times * theirs, f"{mine / theirs:.1f}x {TITLES[peer].split()[0]}"


def table(results: Results, s: Settings) -> list[tuple[str, ...]]:
    k = f"{s.jobs // 1000}k" if s.jobs >= 1000 else str(s.jobs)
    rows: list[tuple[str, ...]] = []

    def cells(values: dict[str, float]) -> list[str]:
        return [fmt(values.get(c)) for c in COLUMNS]

    jobq_rate, raw_rate = results.one_by_one.get("jobq"), results.one_by_one.get("raw")
    ok = None if not (jobq_rate and raw_rate) else jobq_rate * 1.5 >= raw_rate
    detail = "" if ok is None else f"raw is {raw_rate / jobq_rate:.2f}x"  # type: ignore[operator]
    rows.append((f"enqueue {k} one by one (jobs/s)", *cells(results.one_by_one),
                 ">= raw EVALSHA / 1.5", verdict(ok, detail)))  # fmt: skip
    rows.append((f"  same, appendfsync always, {min(s.jobs, FSYNC_JOBS):,} (jobs/s)",
                 *cells(results.fsync_one_by_one), "-", "-"))  # fmt: skip
    bulk = results.bulk_ms.get("jobq")
    rows.append((f"enqueue {k} in bulk (ms)", *cells(results.bulk_ms), "< 50 ms",
                 verdict(None if bulk is None else bulk < 50)))  # fmt: skip
    ok_h, detail_h = ratio_check(results.threads, "huey", 3)
    rows.append((f"process {k} no-op, 4 threads (jobs/s)", *cells(results.threads),
                 ">= 3x Huey", verdict(ok_h, detail_h)))  # fmt: skip
    ok_rq, detail_rq = ratio_check(results.processes, "rq", 10)
    ok_h, detail_h = ratio_check(results.processes, "huey", 3)
    both = None if ok_rq is None or ok_h is None else ok_rq and ok_h
    rows.append((f"process {k} no-op, 4 processes (jobs/s)", *cells(results.processes),
                 ">= 10x RQ, >= 3x Huey", verdict(both, f"{detail_rq}, {detail_h}")))  # fmt: skip
    p50, p99 = percentile(results.latency, 0.5), percentile(results.latency, 0.99)
    rows.append(("pickup p50, other process (ms)", *cells({"jobq": p50} if p50 else {}), "-", "-"))
    rows.append((
        "pickup p99, other process (ms)", *cells({"jobq": p99} if p99 else {}), "< 3 ms",
        verdict(None if p99 is None else p99 < 3),
    ))  # fmt: skip
    return rows


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]

    def line(row: tuple[str, ...]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    print(line(HEADER))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def print_environment(url: str, s: Settings) -> None:
    client = redis.Redis.from_url(url)
    server_version = client.info("server")["redis_version"]
    client.close()
    print(
        f"python {sys.version.split()[0]} | jobq {version('jobq')} | redis-py {version('redis')} "
        f"(hiredis {version('hiredis')}) | rq {version('rq')} | huey {version('huey')} | "
        f"celery {version('celery')}"
    )
    print(
        f"redis-server {server_version} on 127.0.0.1, no persistence | {os.cpu_count()} CPUs | "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"{s.jobs:,} jobs per workload, one run; 4 threads = one process, 4 processes = jobq "
        "4 x start_workers(1), RQ 4 burst workers, Huey/Celery their own 4-process pools"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 jobs, to check it runs")
    parser.add_argument("--jobs", type=int, default=None, help="jobs per workload")
    parser.add_argument("--samples", type=int, default=None, help="pickup latency samples")
    parser.add_argument("--no-celery", action="store_true", help="leave Celery out")
    parser.add_argument("--dir", default=None, help="where the servers' folders go")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child_main(args.child)
        return 0
    s = QUICK if args.quick else FULL
    s = Settings(
        args.jobs or s.jobs,
        args.samples or s.samples,
        celery=not args.no_celery and version("celery") != "-",
    )

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through the cleanups

    signal.signal(signal.SIGTERM, terminate)
    folder = Path(tempfile.mkdtemp(prefix="jobq-bench-redis-", dir=args.dir))
    try:
        with (
            redis_server(folder / "plain") as url,
            redis_server(folder / "fsync", fsync_always=True) as fsync_url,
        ):
            step("servers up")
            print_environment(url, s)
            results = run(url, fsync_url, s)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print()
    print_table(table(results, s))
    return 0


if __name__ == "__main__":
    with suppress(BrokenPipeError):
        sys.exit(main())
