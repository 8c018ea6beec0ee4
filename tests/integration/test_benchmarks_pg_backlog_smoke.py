"""The PostgreSQL backlog benchmark runs to the end against the test server, on tiny
backlogs (figures are not checked: the test server runs with fsync off)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT, require_postgres

pytestmark = pytest.mark.postgres
pytest.importorskip("procrastinate", reason="benchmark peers come with the 'bench' extra")

SCRIPT = ROOT / "benchmarks" / "bench_pg_backlog.py"


def test_smoke_run_prints_the_table_and_the_dead_rows() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--url", require_postgres()],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [[cell.strip() for cell in line.split("|")] for line in done.stdout.splitlines()]
    assert ["workload", "before / raw", "jobq now", "Procrastinate", "goal", "met?"] in rows
    assert any(row[0] == "processing, 3,000 pending, 3 queues (jobs/s)" for row in rows)
    assert "jobq_jobs dead rows" in done.stdout
