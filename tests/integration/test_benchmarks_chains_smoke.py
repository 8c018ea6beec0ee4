"""The chains benchmark runs to the end (figures are not checked: this run is too short)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

SCRIPT = ROOT / "benchmarks" / "bench_chains.py"
HEADER = ["backend", "enqueue chain", "run chain", "per step", "plain job, per job", "goal", "met?"]


def test_a_short_run_prints_the_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [[cell.strip() for cell in line.split("|")] for line in done.stdout.splitlines()]
    assert HEADER in rows, done.stdout
    assert any(row[0] == "SQLite" for row in rows), done.stdout
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"
