"""The rescue benchmark runs to the end on a small newsletter, without kills and with
two gunicorn workers killed (figures are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

SCRIPT = ROOT / "benchmarks" / "bench_rescue.py"


def test_a_small_run_prints_the_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--count", "200", "--runs", "A,B", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("run |"))
    assert "last email (s)" in header
    assert "duplicates" in header
    assert [line.split(" | ")[0].strip() for line in lines[lines.index(header) + 1 :][:2]] == [
        "A",
        "B",
    ]
