"""The isolation benchmark runs to the end (figures are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

SCRIPT = ROOT / "benchmarks" / "bench_isolation.py"


def test_a_quick_run_prints_the_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [[cell.strip() for cell in line.split("|")] for line in done.stdout.splitlines()]
    header = ["", "workload", "thread", "process", "overhead", ""]
    assert header in lines, done.stdout
    workloads = [line[1] for line in lines[lines.index(header) + 2 :]]
    assert workloads == [
        "attempt round trip, us per job",
        "pool of 1 thread, ms per job",
        "pool of 4 threads, ms per job",
    ]
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"
