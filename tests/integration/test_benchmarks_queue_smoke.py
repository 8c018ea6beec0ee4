"""The durable-queue benchmark runs to the end (figures are not checked: --quick is too short)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytest.importorskip("huey", reason="benchmark peers come with the 'bench' extra")
pytest.importorskip("persistqueue", reason="benchmark peers come with the 'bench' extra")

SCRIPT = ROOT / "benchmarks" / "bench_queue.py"
HEADER = ["workload", "jobq (NORMAL)", "jobq (FULL)", "Huey", "persist-queue", "goal", "met?"]


def test_quick_run_prints_the_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=100,  # a quick run takes about 15 s; pytest's own limit is 120
        check=False,
    )
    assert done.returncode == 0, done.stderr
    headers = [[cell.strip() for cell in line.split("|")] for line in done.stdout.splitlines()]
    assert HEADER in headers, done.stdout
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"
