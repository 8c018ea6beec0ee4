"""The benchmark script runs to the end (figures are not checked: --quick is too short)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytest.importorskip("pyrate_limiter", reason="benchmark peers come with the 'bench' extra")
pytest.importorskip("limits", reason="benchmark peers come with the 'bench' extra")

SCRIPT = ROOT / "benchmarks" / "bench_executor.py"
HEADER = ["measurement", "jobq", "peer", "peer value", "ratio", "goal", "met?"]


def test_quick_run_prints_the_table() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=100,  # a quick run takes a few seconds; pytest's own limit is 120
        check=False,
    )
    assert done.returncode == 0, done.stderr
    headers = [[cell.strip() for cell in line.split("|")] for line in done.stdout.splitlines()]
    assert HEADER in headers, done.stdout
