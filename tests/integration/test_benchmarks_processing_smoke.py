"""The processing benchmark runs to the end (figures are not checked: the run is too short)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytest.importorskip("huey", reason="benchmark peers come with the 'bench' extra")
pytest.importorskip("apsw", reason="benchmark peers come with the 'bench' extra")

SCRIPT = ROOT / "benchmarks" / "bench_processing.py"
HEADER = ["workload", "jobq sqlite3", "jobq apsw", "peer", "goal", "met?"]


def test_quick_run_prints_the_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--jobs", "1000", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=110,  # about 25 s on a quiet machine; pytest's own limit is 120
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    headers = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    assert HEADER in headers, done.stdout
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"
