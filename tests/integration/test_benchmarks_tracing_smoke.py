"""The tracing benchmark runs to the end (figures are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytest.importorskip("opentelemetry.sdk")

SCRIPT = ROOT / "benchmarks" / "bench_tracing.py"


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
    header = ["workload", "off", "on", "on, 10% sampled", "cost on", "cost on, 10% sampled"]
    assert header in lines, done.stdout
    workloads = [line[0] for line in lines[lines.index(header) + 1 :]]
    assert workloads == [
        "enqueue, jobs/s",
        "enqueue_many, ms",
        "pool of 4 threads, no-op jobs/s",
        "pool of 4 threads, 1 ms jobs/s",
    ]
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"
