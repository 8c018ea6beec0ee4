"""The batch benchmark runs to the end and prints its table (figures are not checked:
--quick is too short to mean anything), on SQLite and, with a test server, PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import POSTGRES_URL, ROOT

SCRIPT = ROOT / "benchmarks" / "bench_batches.py"
HEADER = [
    "backend",
    "jobs",
    "without a batch (s)",
    "batch to callback (s)",
    "ratio",
    "goal",
    "met?",
]


def test_quick_run_prints_the_table(tmp_path: Path) -> None:
    url = ["--url", POSTGRES_URL] if POSTGRES_URL else []
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--dir", str(tmp_path), *url],
        capture_output=True,
        text=True,
        timeout=100,  # a quick run takes a few seconds; pytest's own limit is 120
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [[cell.strip() for cell in line.split("|")] for line in done.stdout.splitlines()]
    assert HEADER in rows, done.stdout
    backends = {row[0] for row in rows if len(row) == len(HEADER)}
    assert "sqlite" in backends
    assert not url or "postgresql" in backends
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"
