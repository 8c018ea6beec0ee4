"""The PostgreSQL benchmark runs to the end against the test server (figures are not
checked: --quick is too short, and the test server runs with fsync off)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT, require_postgres

pytestmark = pytest.mark.postgres
pytest.importorskip("procrastinate", reason="benchmark peers come with the 'bench' extra")

SCRIPT = ROOT / "benchmarks" / "bench_postgres.py"


def test_quick_run_prints_the_table() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--url", require_postgres()],
        capture_output=True,
        text=True,
        timeout=100,  # a quick run takes about 11 s; pytest's own limit is 120
        check=False,
    )
    assert done.returncode == 0, done.stderr
    header = [[cell.strip() for cell in line.split("|")] for line in done.stdout.splitlines()]
    assert [
        "workload",
        "jobq (PostgreSQL)",
        "jobq (SQLite NORMAL)",
        "Procrastinate",
        "raw psycopg",
        "goal",
        "met?",
    ] in header, done.stdout
