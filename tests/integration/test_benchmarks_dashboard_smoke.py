"""The dashboard benchmark runs to the end on a small table (figures are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

SCRIPT = ROOT / "benchmarks" / "bench_dashboard.py"


def test_a_small_run_prints_the_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--rows", "2000", "--repeat", "2", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [[cell.strip() for cell in line.split("|")] for line in done.stdout.splitlines()]
    assert lines[0] == ["page", "rows", "median ms", "min ms", "bytes", "goal", "met?"]
    pages = {line[0]: line for line in lines[2:]}
    assert pages["overview  GET /jobq/ui/"][1] == "2,000"
    assert pages["jobs, first page (newest 20)"][5] == "< 100 ms"
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"
