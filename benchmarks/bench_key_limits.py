"""What a claim costs when the jobs of a blocked key come first: per-key limits
(``concurrency_limit=1, limit_key=...``) against a task-wide limit blocking a task,
on SQLite and on PostgreSQL.

Run from the repository root (PostgreSQL's server programs for the second half)::

    python benchmarks/bench_key_limits.py            # 0, 1k, 10k and 100k blocked jobs
    python benchmarks/bench_key_limits.py --quick    # 0 and 1k, a few seconds
    python benchmarks/bench_key_limits.py --no-postgres
    python benchmarks/bench_key_limits.py --url postgresql://me@db/postgres

Each backlog: ``blocked`` pending jobs of account "a" at priority 5 (one more of
them processing, so "a" is at its limit) ahead of 200 jobs of other accounts at
priority 0. A claim of one job must pass over every job of "a" to reach the next
account's. Timed: ``storage.claim(limit=1, limits=...)`` through the storage API,
the claimed job completed between claims (untimed), median of ``--rounds``. The
"task-wide" column is the same backlog with a task-wide ``concurrency_limit=1`` on
the blocked task and the others another task: the cost today's limits already had.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from jobq.storage import SQLiteStorage
from jobq.storage.base import NewJob, Storage, TaskLimit

T0 = 1_000_000.0
PER_KEY = {"sync": TaskLimit(concurrency=1, per_key=True)}
TASK_WIDE = {"blocked": TaskLimit(concurrency=1)}


def fill(storage: Storage, blocked: int, per_key: bool) -> None:
    """The backlog described above, with the first job of "a" processing."""
    if per_key:
        head = [NewJob("sync", "[]", priority=6, limit_key="a")]
        ahead = NewJob("sync", "[]", priority=5, limit_key="a")
        behind = [NewJob("sync", "[]", limit_key=f"b{n}") for n in range(200)]
    else:
        head = [NewJob("blocked", "[]", priority=6)]
        ahead = NewJob("blocked", "[]", priority=5)
        behind = [NewJob("other", "[]")] * 200
    storage.enqueue_many(head, now=T0)
    for start in range(0, blocked, 10_000):
        storage.enqueue_many([ahead] * min(10_000, blocked - start), now=T0)
    storage.enqueue_many(behind, now=T0)
    limits = PER_KEY if per_key else TASK_WIDE
    [running] = storage.claim(["default"], owner="w", now=T0, lease_seconds=3600, limits=limits)
    assert running.priority == 6


def median_claim_ms(storage: Storage, per_key: bool, rounds: int) -> float:
    limits = PER_KEY if per_key else TASK_WIDE
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        [job] = storage.claim(["default"], owner="w", now=T0, lease_seconds=3600, limits=limits)
        times.append(time.perf_counter() - began)
        assert job.priority == 0, "the claim took a job of the blocked key"
        assert job.lease_token is not None
        storage.complete(job.id, job.lease_token, now=T0)
    return statistics.median(times) * 1000


def measure(
    open_storage: Callable[[], Storage], sizes: list[int], rounds: int
) -> list[tuple[int, float, float]]:
    rows = []
    for size in sizes:
        figures = []
        for per_key in (True, False):
            with open_storage() as storage:
                fill(storage, size, per_key)
                figures.append(median_claim_ms(storage, per_key, rounds))
        rows.append((size, figures[0], figures[1]))
    return rows


@contextmanager
def sqlite_files() -> Iterator[Callable[[], Storage]]:
    with tempfile.TemporaryDirectory(prefix="jobq-bench-keys-") as folder:
        count = iter(range(1_000_000))
        yield lambda: SQLiteStorage(Path(folder) / f"q{next(count)}.db")


@contextmanager
def postgres_schemas(url: str | None) -> Iterator[Callable[[], Storage]]:
    import bench_postgres as bp

    from jobq.storage.postgres import PostgresStorage

    server_of = bp.throwaway_server(None) if url is None else bp.existing_server(url)
    with server_of as base, ExitStack() as stack:
        server = bp.Server(base)
        stack.callback(server.close)
        yield lambda: PostgresStorage(stack.enter_context(server.database()), clock="caller")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="0 and 1k blocked jobs only")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--url", default=None, help="an existing PostgreSQL server")
    args = parser.parse_args()
    sizes = [0, 1000] if args.quick else [0, 1000, 10_000, 100_000]
    rounds = 5 if args.quick else args.rounds
    results: list[tuple[str, int, float, float]] = []
    with sqlite_files() as opener:
        results += [("SQLite", *row) for row in measure(opener, sizes, rounds)]
    if not args.no_postgres:
        with postgres_schemas(args.url) as opener:
            results += [("PostgreSQL", *row) for row in measure(opener, sizes, rounds)]
    print("backend    | blocked jobs ahead | claim, per-key limit | claim, task-wide limit")
    print("-----------|--------------------|----------------------|-----------------------")
    for backend, size, keyed, wide in results:
        print(f"{backend:<10} | {size:>18,} | {keyed:>17.2f} ms | {wide:>19.2f} ms")


if __name__ == "__main__":
    main()
