"""The enqueue benchmark runs to the end (figures are not checked: --quick is too short)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytest.importorskip("huey", reason="benchmark peers come with the 'bench' extra")

SCRIPT = ROOT / "benchmarks" / "bench_enqueue.py"


def test_quick_run_prints_the_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=100,  # a quick run takes a few seconds; pytest's own limit is 120
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [[cell.strip() for cell in line.split("|")] for line in done.stdout.splitlines()]
    header = next(row for row in rows if row[0] == "workload")
    assert header[-4:] == ["Huey", "Huey NORMAL", "goal", "met?"]
    table = rows[rows.index(header) + 2 :]
    workloads = [row[0] for row in table[: table.index([""])]]
    assert workloads == [
        "one by one, FULL",
        "one by one, NORMAL",
        "8 threads, FULL",
        "8 threads, NORMAL",
        "bulk 10,000, FULL",
        "bulk 10,000, NORMAL",
    ]
    assert "jobq sqlite3, 8 threads, FULL: " in done.stdout  # jobs per commit
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"
