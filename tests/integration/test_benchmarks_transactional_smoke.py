"""The transactional enqueue benchmark runs to the end against the test server, in
tiny rounds (figures are not checked: too short, and the test server runs with
fsync off)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT, require_postgres

pytestmark = pytest.mark.postgres
pytest.importorskip("procrastinate", reason="benchmark peers come with the 'bench' extra")
pytest.importorskip(
    "sqlalchemy", reason="the benchmark's Session comes with the 'sqlalchemy' extra"
)

SCRIPT = ROOT / "benchmarks" / "bench_transactional.py"


def test_smoke_run_prints_the_table() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--url", require_postgres()],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [[cell.strip() for cell in line.split("|")] for line in done.stdout.splitlines()]
    assert [
        "workload",
        "plain INSERT",
        "INSERT into jobq_jobs",
        "jobq enqueue",
        "ratio to plain",
        "ratio to jobq_jobs",
        "goal",
        "met?",
    ] in rows, done.stdout
    labels = [row[0] for row in rows]
    assert "user row + job, one transaction, psycopg connection (us/txn)" in labels
    assert "user row + 100 jobs (enqueue_many), psycopg connection (us/txn)" in labels
    assert "user row + job, one transaction, SQLAlchemy Session (us/txn)" in labels
