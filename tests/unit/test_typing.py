"""mypy sees a task's parameters through .enqueue(): wrong arguments fail type checking,
for core tasks and for tasks declared on the Flask extension alike."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # each test runs mypy in a fresh interpreter: 3-4 s

CORE = """
    import jobq

    queue = jobq.DurableQueue("jobs.db")

    @queue.task("greet")
"""
FLASK = """
    from flask_jobq import JobQ

    jobq_ext = JobQ()

    @jobq_ext.task("greet")
"""
CALLS = """\
    def greet(user_id: int, greeting: str = "hello") -> str:
        return greeting

    greet.enqueue(1, greeting="hi")
    greet.options(delay=5).enqueue(2)
    result: str = greet(3)
    greet.enqueue("one")  # line 13: wrong type
    greet.enqueue(1, colour="red")  # line 14: unknown keyword
    greet.options(priority=1).enqueue()  # line 15: missing argument
"""


@pytest.mark.parametrize("declaration", [CORE, FLASK], ids=["core", "flask"])
def test_mypy_checks_enqueue_arguments(tmp_path: Path, declaration: str) -> None:
    source = tmp_path / "snippet.py"
    source.write_text(textwrap.dedent(declaration + CALLS))
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=tmp_path,
        check=False,
        # An editable install is an import hook, which mypy does not follow.
        env={**os.environ, "MYPYPATH": str(ROOT)},
    )
    lines = sorted(
        int(line.split(":")[1]) for line in done.stdout.splitlines() if ": error:" in line
    )
    assert lines == [13, 14, 15], done.stdout


CLOCKS = """\
    import jobq
    from jobq.testing import FakeClock

    jobq.DurableQueue("jobs.db", clock=jobq.WALL_CLOCK)
    jobq.DurableQueue("jobs.db", clock=jobq.WallClock())
    jobq.DurableQueue("jobs.db", clock=FakeClock(1_800_000_000))
    jobq.BoundedExecutor(clock=jobq.SYSTEM_CLOCK)
    jobq.BoundedExecutor(clock=FakeClock())
    jobq.TokenBucket(1, clock=jobq.WALL_CLOCK)
    monotonic: jobq.Clock = jobq.SYSTEM_CLOCK
    jobq.DurableQueue("jobs.db", clock=jobq.SYSTEM_CLOCK)  # line 11: monotonic, not epoch
    jobq.DurableQueue("jobs.db", clock=monotonic)  # line 12: same, through the old name
"""


def test_mypy_keeps_monotonic_clocks_out_of_the_durable_queue(tmp_path: Path) -> None:
    source = tmp_path / "clocks.py"
    source.write_text(textwrap.dedent(CLOCKS))
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=tmp_path,
        check=False,
        env={**os.environ, "MYPYPATH": str(ROOT)},
    )
    lines = sorted(
        int(line.split(":")[1]) for line in done.stdout.splitlines() if ": error:" in line
    )
    assert lines == [11, 12], done.stdout
    assert 'missing following "EpochClock" protocol member' in done.stdout
