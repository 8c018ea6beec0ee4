"""A chain of no-op steps, one after another, each given the result of the one before:
seconds per step, on SQLite (goal: under 2 ms per step), on PostgreSQL, and on Redis
when given a server.

Run from the repository root (PostgreSQL's server programs for its rows)::

    python benchmarks/bench_chains.py                # 1,000 steps, 3 rounds, both backends
    python benchmarks/bench_chains.py --quick        # 100 steps, 1 round, SQLite: a few seconds
    python benchmarks/bench_chains.py --no-postgres
    python benchmarks/bench_chains.py --url postgresql://me@db/postgres
    python benchmarks/bench_chains.py --redis redis://127.0.0.1:6379/0   # adds Redis

One process: a ``DurableQueue`` with one worker pool of one thread (the steps run one
after another anyway), its poll interval at the default. Timed per round:

- ``enqueue``: ``queue.chain(step.s(), ..., step.s())``: every step stored in one
  transaction, each after the first waiting for the one before it.
- ``run``: from the pool's start to the last step's run (the pool claims each step
  right after recording the completion that released it, without a poll).
- ``plain``: the same number of independent no-op jobs (``enqueue_many``) run by
  the same pool: what a job costs without a chain, for comparison. A chain cannot
  batch claims (one step is runnable at a time) where plain jobs are claimed many
  at once, so the difference is the price of running strictly one after another.

The table gives medians over ``--rounds``; each round uses a fresh database.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import jobq
from jobq.storage import SQLiteStorage
from jobq.storage.base import Storage

GOAL_MS = 2.0
"""Goal on SQLite: under 2 ms per step (issue 19)."""
WAIT = 600.0
"""Seconds a round may take before the benchmark gives up."""


def one_round(storage: Storage, steps: int) -> tuple[float, float, float]:
    """(enqueue seconds, run seconds, plain seconds) for ``steps`` on a fresh storage."""
    queue = jobq.DurableQueue(storage)
    done = threading.Event()

    @queue.task("step", max_attempts=1)
    def step(value: Any = None, last: bool = False) -> int:
        if last:
            done.set()
        return 1

    try:
        began = time.perf_counter()
        chain = queue.chain(*[step.s() for _ in range(steps - 1)], step.s(last=True))
        enqueued = time.perf_counter() - began
        began = time.perf_counter()
        pool = queue.start_workers(concurrency=1)
        try:
            if not done.wait(WAIT):
                sys.exit("the chain did not finish in time")
            ran = time.perf_counter() - began
        finally:
            pool.stop()
        last = queue.get(chain.last_id)
        assert last.status is jobq.JobStatus.COMPLETED, last
        done.clear()
        ids = step.enqueue_many([()] * (steps - 1) + [{"last": True}])
        began = time.perf_counter()
        pool = queue.start_workers(concurrency=1)
        try:
            if not done.wait(WAIT):
                sys.exit("the plain jobs did not finish in time")
            plain = time.perf_counter() - began
        finally:
            pool.stop()
        assert queue.get(ids[-1]).status is jobq.JobStatus.COMPLETED
    finally:
        queue.close()
    return enqueued, ran, plain


def measure(opener: Callable[[], Storage], steps: int, rounds: int) -> tuple[float, float, float]:
    figures = [one_round(opener(), steps) for _ in range(rounds)]
    return tuple(statistics.median(f[i] for f in figures) for i in range(3))  # type: ignore[return-value]


@contextmanager
def sqlite_files(folder: str | None) -> Iterator[Callable[[], Storage]]:
    with tempfile.TemporaryDirectory(prefix="jobq-bench-chains-", dir=folder) as path:
        count = iter(range(1_000_000))
        yield lambda: SQLiteStorage(Path(path) / f"chain{next(count)}.db")


@contextmanager
def postgres_schemas(url: str | None) -> Iterator[Callable[[], Storage]]:
    import bench_postgres as bp

    from jobq.storage.postgres import PostgresStorage

    server_of = bp.throwaway_server(None) if url is None else bp.existing_server(url)
    with server_of as base, ExitStack() as stack:
        server = bp.Server(base)
        stack.callback(server.close)
        yield lambda: PostgresStorage(stack.enter_context(server.database()))


@contextmanager
def redis_prefixes(url: str) -> Iterator[Callable[[], Storage]]:
    """A fresh key prefix per round on the server at ``url``, its keys deleted after."""
    import redis

    from jobq.storage.redis import RedisStorage

    prefixes: list[str] = []

    def opener() -> Storage:
        prefixes.append(f"jobq-bench-chains-{uuid.uuid4().hex[:12]}:")
        # A benchmark's data: the server's persistence settings are not its concern.
        return RedisStorage(url, prefix=prefixes[-1], durability="ignore")

    try:
        yield opener
    finally:
        with redis.Redis.from_url(url) as client:
            for prefix in prefixes:
                keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
                for start in range(0, len(keys), 1000):
                    client.unlink(*keys[start : start + 1000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 steps, 1 round, SQLite only")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--url", default=None, help="an existing PostgreSQL server")
    parser.add_argument("--dir", default=None, help="where the SQLite files go")
    parser.add_argument("--redis", default=None, help="a Redis server's URL: measure it too")
    args = parser.parse_args()
    steps, rounds = (100, 1) if args.quick else (args.steps, args.rounds)
    results: list[tuple[str, float, float, float]] = []
    with sqlite_files(args.dir) as opener:
        results.append(("SQLite", *measure(opener, steps, rounds)))
    if not (args.quick or args.no_postgres):
        with postgres_schemas(args.url) as opener:
            results.append(("PostgreSQL", *measure(opener, steps, rounds)))
    if args.redis:
        with redis_prefixes(args.redis) as opener:
            results.append(("Redis", *measure(opener, steps, rounds)))
    print(f"jobq {jobq.__version__}, {steps:,} steps, median of {rounds} round(s)")
    print("backend    | enqueue chain | run chain | per step | plain job, per job | goal   | met?")
    print("-----------|---------------|-----------|----------|--------------------|--------|-----")
    for backend, enqueued, ran, plain in results:
        per_step = ran / steps * 1000
        goal, met = (
            ("< 2 ms", "yes" if per_step < GOAL_MS else "NO") if backend == "SQLite" else ("-", "-")
        )
        print(
            f"{backend:<10} | {enqueued * 1000:>10.1f} ms | {ran:>7.2f} s | {per_step:>5.2f} ms "
            f"| {plain / steps * 1000:>15.3f} ms | {goal:<6} | {met}"
        )


if __name__ == "__main__":
    main()
