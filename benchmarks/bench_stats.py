"""Benchmark what the monitor reads on a large table: ``stats()``, ``oldest_runnable_age()``
and the ``/jobq/stats`` and ``/jobq/health`` endpoints, on SQLite and PostgreSQL.

Run from the repository root::

    python benchmarks/bench_stats.py                 # 1,000,000 rows, 1,000 queues
    python benchmarks/bench_stats.py --rows 1000     # a few seconds, to check it runs

PostgreSQL joins when ``JOBQ_TEST_POSTGRES_URL`` names a server where the
benchmark may create (and afterwards drop) a schema; otherwise its row says why
it was skipped.

The table is filled with plain SQL (through the backends' own triggers, so the
kept counts are what the queue would keep) with this mix, spread over
``--queues`` queue names: 90% completed (finished over the last hour), 4% failed,
1% cancelled, 3% pending and due, 1% pending for later, 1% processing. Each
figure is the median of ``--repeat`` calls, after one warm-up call. The goal
(under 20 ms at 1,000,000 rows) is on ``stats()`` and ``/jobq/health``;
``GET /jobq/stats`` adds rendering every queue as JSON.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask

import jobq
from flask_jobq import JobQ, state_for
from flask_jobq.views import BLUEPRINT_NAME, register_monitor
from jobq.storage import SQLiteStorage

GOAL_MS = 20.0
"""The goal for each figure at 1,000,000 rows."""

HEADER = (
    "backend",
    "rows",
    "queues",
    "stats() ms",
    "oldest_runnable_age() ms",
    "GET /jobq/stats ms",
    "GET /jobq/health ms",
    "goal",
    "met?",
)

# Status of row i by i % 100, and its times relative to now (seconds).
_MIX = """
    CASE WHEN m < 90 THEN 'completed' WHEN m < 94 THEN 'failed' WHEN m < 95 THEN 'cancelled'
         WHEN m < 99 THEN 'pending' ELSE 'processing' END,
    CASE WHEN m = 98 THEN {now} + 3600 ELSE {now} - 3600 + (i % 3600) END,
    CASE WHEN m < 95 THEN {now} - 3600 + (i % 3600) END,
    CASE WHEN m = 99 THEN {now} + 30 END
"""
_COLUMNS = (
    "queue, name, payload, status, run_at, finished_at, lease_expires_at, "
    "max_attempts, created_at, updated_at"
)


def fill_sqlite(path: Path, rows: int, queues: int, now: float) -> None:
    """Create the database and insert ``rows`` jobs in one transaction."""
    with SQLiteStorage(path) as storage, storage._db.write() as conn:
        conn.run(
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) "
            f"INSERT INTO jobs ({_COLUMNS}) SELECT 'q' || (i / 100 % ?2), 't', '[]', "
            f"{_MIX.format(now='?3')}, 3, ?3, ?3 "
            "FROM (SELECT i, i % 100 AS m FROM n)",
            (rows, queues, now),
        )


def fill_postgres(url: str, rows: int, queues: int) -> None:
    """Create the tables and insert ``rows`` jobs at the server's time."""
    import psycopg

    from jobq.storage.postgres import PostgresStorage

    PostgresStorage(url).close()  # creates the schema
    now = "extract(epoch from now())::float8"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO jobq_jobs ({_COLUMNS}) SELECT 'q' || (i / 100 %% %s), 't', '[]', "
            f"{_MIX.format(now=now).replace('%', '%%')}, 3, {now}, {now} "
            "FROM (SELECT i, i %% 100 AS m FROM generate_series(1, %s) AS i) AS g",
            (queues, rows),
        )
        conn.execute("VACUUM ANALYZE jobq_jobs")


@contextmanager
def postgres_schema(base: str) -> Iterator[str]:
    """A URL whose search_path is a new schema, dropped afterwards."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-c%20search_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def median_ms(call: Callable[[], Any], repeat: int) -> float:
    call()  # warm-up: connections, prepared statements, caches
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def measure(database: str, repeat: int) -> tuple[float, float, float, float]:
    """stats(), oldest_runnable_age(), GET /jobq/stats and GET /jobq/health, in ms."""
    app = Flask("bench_stats")
    app.config.update(
        JOBQ_DATABASE=database, JOBQ_START_WORKERS=False, JOBQ_MONITOR_AUTH=lambda: True
    )
    JobQ(app)
    if BLUEPRINT_NAME not in app.blueprints:
        register_monitor(app)
    queue: jobq.DurableQueue = state_for(app).queue
    client = app.test_client()

    def get(path: str) -> None:
        response = client.get(path)
        assert response.status_code in (200, 503), response.data[:200]

    try:
        return (
            median_ms(queue.stats, repeat),
            median_ms(queue.oldest_runnable_age, repeat),
            median_ms(lambda: get("/jobq/stats"), repeat),
            median_ms(lambda: get("/jobq/health"), repeat),
        )
    finally:
        queue.close()


def row(backend: str, rows: int, queues: int, figures: tuple[float, ...] | str) -> list[str]:
    if isinstance(figures, str):
        return [backend, f"{rows:,}", f"{queues:,}", *(["-"] * 4), f"< {GOAL_MS:g} ms", figures]
    # The goal is on stats() and /health; GET /jobq/stats adds rendering the JSON.
    met = "yes" if max(figures[0], figures[3]) < GOAL_MS else "no"
    return [
        backend,
        f"{rows:,}",
        f"{queues:,}",
        *(f"{f:.2f}" for f in figures),
        f"< {GOAL_MS:g} ms",
        met,
    ]


def print_table(lines: list[list[str]]) -> None:
    table = [list(HEADER), *lines]
    widths = [max(len(line[c]) for line in table) for c in range(len(HEADER))]
    for n, line in enumerate(table):
        print(" | ".join(cell.ljust(widths[c]) for c, cell in enumerate(line)).rstrip())
        if n == 0:
            print("-+-".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="jobs in the table")
    parser.add_argument("--queues", type=int, default=1000, help="queue names they use")
    parser.add_argument("--repeat", type=int, default=9, help="calls per figure (median)")
    parser.add_argument("--dir", default=None, help="where the SQLite file goes")
    args = parser.parse_args(argv)
    lines = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="jobq-bench-stats-") as folder:
        path = Path(folder) / "jobs.db"
        began = time.perf_counter()
        fill_sqlite(path, args.rows, args.queues, time.time())
        print(
            f"SQLite: {args.rows:,} rows in {time.perf_counter() - began:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        with SQLiteStorage(path) as storage:
            version = ".".join(map(str, storage.sqlite_version))
        lines.append(
            row(f"SQLite {version}", args.rows, args.queues, measure(str(path), args.repeat))
        )
    base = os.environ.get("JOBQ_TEST_POSTGRES_URL", "")
    if not base:
        lines.append(
            row("PostgreSQL", args.rows, args.queues, "skipped: set JOBQ_TEST_POSTGRES_URL")
        )
    else:
        with postgres_schema(base) as url:
            began = time.perf_counter()
            fill_postgres(url, args.rows, args.queues)
            print(
                f"PostgreSQL: {args.rows:,} rows in {time.perf_counter() - began:.1f} s",
                file=sys.stderr,
                flush=True,
            )
            lines.append(row("PostgreSQL", args.rows, args.queues, measure(url, args.repeat)))
    print_table(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
