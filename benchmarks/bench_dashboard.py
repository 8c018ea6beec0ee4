"""Benchmark the dashboard's pages on a large SQLite table: the overview and the first
page of jobs (the goal: under 100 ms each at 1,000,000 jobs), and a few filtered pages.

Run from the repository root::

    python benchmarks/bench_dashboard.py                 # 1,000,000 jobs
    python benchmarks/bench_dashboard.py --rows 2000     # a few seconds, to check it runs

The table is filled with one SQL statement (through the schema's triggers, so the
kept counts are what the queue would keep), over ``--queues`` queues and 10 tasks:
90% completed, 4% failed (with an error and a traceback), 1% cancelled, 3% pending
and due, 1% pending for later, 1% processing; each payload holds a ``user_id``. The
two argument filters match no job: the worst case, every row the other filters
leave is read.
Each figure is the median of ``--repeat`` renders through Flask's test client
(authorisation, rendering, headers: the whole answer), after one warm-up render.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask

import jobq
from flask_jobq import JobQ, state_for
from jobq.storage import SQLiteStorage

GOAL_MS = 100.0
"""The goal for the overview and the first page of jobs."""

HEADER = ("page", "rows", "median ms", "min ms", "bytes", "goal", "met?")

_FILL = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
INSERT INTO jobs (queue, name, payload, status, attempts, max_attempts, run_at, started_at,
                  finished_at, lease_owner, lease_expires_at, error_type, error_message,
                  error_traceback, result, created_at, updated_at)
SELECT 'q' || (i % ?2), 'task' || (i / 7 % 10),
       '{"args": [], "kwargs": {"user_id": ' || (i % 50000) || '}}',
       CASE WHEN m < 90 THEN 'completed' WHEN m < 94 THEN 'failed'
            WHEN m < 95 THEN 'cancelled' WHEN m < 99 THEN 'pending' ELSE 'processing' END,
       CASE WHEN m < 95 OR m = 99 THEN 1 ELSE 0 END, 3,
       CASE WHEN m = 98 THEN ?3 + 3600 ELSE ?3 - 86400 + i * 86400.0 / ?1 END,
       CASE WHEN m < 95 OR m = 99 THEN ?3 - 86400 + i * 86400.0 / ?1 END,
       CASE WHEN m < 95 THEN ?3 - 86400 + i * 86400.0 / ?1 + 0.5 END,
       CASE WHEN m = 99 THEN 'bench-host:1:pool1' END,
       CASE WHEN m = 99 THEN ?3 + 30 END,
       CASE WHEN m BETWEEN 90 AND 93 THEN 'ValueError' END,
       CASE WHEN m BETWEEN 90 AND 93 THEN 'user ' || (i % 50000) || ' has no address' END,
       CASE WHEN m BETWEEN 90 AND 93 THEN
            'Traceback (most recent call last):' || char(10) ||
            '  File "app.py", line 12, in send' || char(10) || 'ValueError: no address' END,
       CASE WHEN m < 90 THEN '{"sent": true}' END,
       ?3 - 86400 + i * 86400.0 / ?1, ?3
FROM (SELECT i, i % 100 AS m FROM n)
"""


def fill(path: Path, rows: int, queues: int, now: float) -> None:
    """Create the database and insert ``rows`` jobs in one transaction."""
    with SQLiteStorage(path) as storage, storage._db.write() as conn:
        conn.run(_FILL, (rows, queues, now))


def median_ms(call: Callable[[], int], repeat: int) -> tuple[float, float, int]:
    """Median and minimum milliseconds of ``call`` (after a warm-up), and its result."""
    size = call()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000, min(times) * 1000, size


def pages(queue: jobq.DurableQueue) -> list[tuple[str, str, bool]]:
    """(label, URL, has a goal) of each page measured."""
    failed = queue.list(status="failed", limit=1, newest_first=True)
    job_id = failed[0].id if failed else 1
    return [
        ("overview  GET /jobq/ui/", "/jobq/ui/", True),
        ("jobs, first page (newest 20)", "/jobq/ui/jobs", True),
        ("jobs, 100 a page", "/jobq/ui/jobs?limit=100", False),
        ("jobs, oldest first", "/jobq/ui/jobs?sort=oldest", False),
        ("jobs ?status=failed", "/jobq/ui/jobs?status=failed", False),
        ("jobs ?status=pending", "/jobq/ui/jobs?status=pending", False),
        ("jobs ?queue=q3", "/jobq/ui/jobs?queue=q3", False),
        ("jobs ?task=task7&status=failed", "/jobq/ui/jobs?task=task7&status=failed", False),
        (
            "jobs ?status=failed&arg=user_id=7 (none)",
            "/jobq/ui/jobs?status=failed&arg=user_id%3D7",
            False,
        ),
        (
            "jobs ?task=task7&arg=user_id=7 (none)",
            "/jobq/ui/jobs?task=task7&arg=user_id%3D7",
            False,
        ),
        ("bulk retry confirmation (counts)", "/jobq/ui/bulk?action=retry&status=failed", False),
        ("one failed job's page", f"/jobq/ui/jobs/{job_id}", False),
        ("workers", "/jobq/ui/workers", False),
    ]


def measure(database: Path, rows: int, repeat: int) -> list[list[str]]:
    app = Flask("bench_dashboard")
    app.config.update(
        JOBQ_DATABASE=str(database), JOBQ_START_WORKERS=False, JOBQ_MONITOR_AUTH=lambda: True
    )
    JobQ(app)
    queue: jobq.DurableQueue = state_for(app).queue
    client = app.test_client()
    lines = []

    def render(url: str) -> Callable[[], int]:
        def call() -> int:
            response = client.get(url, headers={"Accept": "text/html"})
            assert response.status_code == 200, (url, response.status_code)
            return len(response.data)

        return call

    try:
        for label, url, has_goal in pages(queue):
            median, fastest, size = median_ms(render(url), repeat)
            goal = f"< {GOAL_MS:g} ms" if has_goal else ""
            met = ("yes" if median < GOAL_MS else "no") if has_goal else ""
            lines.append(
                [label, f"{rows:,}", f"{median:.1f}", f"{fastest:.1f}", f"{size:,}", goal, met]
            )
    finally:
        state_for(app).close()
    return lines


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
    parser.add_argument("--queues", type=int, default=20, help="queue names they use")
    parser.add_argument("--repeat", type=int, default=15, help="renders per figure (median)")
    parser.add_argument("--dir", default=None, help="where the SQLite file goes")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="jobq-bench-dashboard-") as folder:
        path = Path(folder) / "jobs.db"
        began = time.perf_counter()
        fill(path, args.rows, args.queues, time.time())
        print(
            f"SQLite: {args.rows:,} jobs written in {time.perf_counter() - began:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        print_table(measure(path, args.rows, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
