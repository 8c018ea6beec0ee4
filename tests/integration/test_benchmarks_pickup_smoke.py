"""The pickup benchmark runs to the end (figures are not checked: this run is too short)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytest.importorskip("huey", reason="benchmark peers come with the 'bench' extra")

SCRIPT = ROOT / "benchmarks" / "bench_pickup.py"
HEADER = ["workload", "jobq (channel)", "jobq (poll only)", "Huey", "goal", "met?"]


def test_a_short_run_prints_the_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--samples", "8", "--rounds", "1", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.strip().strip("|") for line in done.stdout.splitlines()]
    headers = [[cell.strip() for cell in row.split("|")] for row in rows]
    assert HEADER in headers, done.stdout
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"
