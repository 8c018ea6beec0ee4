"""The stats benchmark runs to the end on a small table (figures are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

SCRIPT = ROOT / "benchmarks" / "bench_stats.py"
HEADER = [
    "backend",
    "rows",
    "queues",
    "stats() ms",
    "oldest_runnable_age() ms",
    "GET /jobq/stats ms",
    "GET /jobq/health ms",
    "goal",
    "met?",
]


def test_a_small_run_prints_the_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--rows",
            "1000",
            "--queues",
            "10",
            "--repeat",
            "3",
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [[cell.strip() for cell in line.split("|")] for line in done.stdout.splitlines()]
    assert HEADER in lines, done.stdout
    assert any(line[0].startswith("SQLite") and line[1:3] == ["1,000", "10"] for line in lines), (
        done.stdout
    )
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"
