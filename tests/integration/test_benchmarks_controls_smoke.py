"""The task controls benchmark runs to the end (figures are not checked: --quick is too short)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

SCRIPT = ROOT / "benchmarks" / "bench_controls.py"


def test_quick_run_prints_a_row_per_control(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in done.stdout.splitlines()]
    rows = [row for row in rows if len(row) == 4]
    assert rows[0] == ["workload", "option", "µs per job", "vs plain"]
    options = [(row[0], row[1]) for row in rows[2:]]
    assert ("enqueue", "debounce=60, one key") in options
    assert ("processing", "per-key concurrency_limit=1, 100 accounts") in options
    assert len(options) == 12
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"
