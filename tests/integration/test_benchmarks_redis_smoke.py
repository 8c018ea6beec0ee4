"""The Redis benchmark runs to the end on throwaway servers of its own (figures are not
checked: the run is too short), and leaves no files behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.redis
pytest.importorskip("redis", reason="the Redis backend needs the 'redis' extra")
pytest.importorskip("rq", reason="benchmark peers come with the 'bench' extra")
pytest.importorskip("huey", reason="benchmark peers come with the 'bench' extra")

SCRIPT = ROOT / "benchmarks" / "bench_redis.py"
HEADER = [
    "workload",
    "jobq",
    "RQ (Worker, fork)",
    "RQ (SimpleWorker)",
    "Huey (RedisHuey)",
    "Celery",
    "raw Redis",
    "goal",
    "met?",
]
NO_SERVER = "the Redis benchmark starts its own redis-server, which is not on the PATH"


def test_a_short_run_prints_the_table(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        if os.environ.get("JOBQ_REQUIRE_REDIS") == "1":
            pytest.fail(NO_SERVER)
        pytest.skip(NO_SERVER)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--jobs", "200", "--samples", "8", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=110,  # about 20 s on a quiet machine; pytest's own limit is 120
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [[cell.strip() for cell in line.split("|")] for line in done.stdout.splitlines()]
    assert HEADER in rows, done.stdout
    labels = [row[0] for row in rows]
    assert "enqueue 200 in bulk (ms)" in labels, done.stdout
    assert "pickup p99, other process (ms)" in labels, done.stdout
    assert list(tmp_path.iterdir()) == [], "the benchmark left files behind"
