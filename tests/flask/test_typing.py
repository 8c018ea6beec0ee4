"""mypy checks the arguments of a Flask task's .enqueue() as it does for core tasks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

SNIPPET = textwrap.dedent(
    """
    from flask_jobq import JobQ

    jobq_ext = JobQ()

    @jobq_ext.task("greet")
    def greet(user_id: int, greeting: str = "hello") -> str:
        return greeting

    greet.enqueue(1, greeting="hi")
    greet.options(delay=5).enqueue(2)
    result: str = greet(3)
    greet.enqueue("one")  # line 13: wrong type
    greet.enqueue(1, colour="red")  # line 14: unknown keyword
    greet.options(priority=1).enqueue()  # line 15: missing argument
    """
)


def test_mypy_checks_flask_task_enqueue_arguments(tmp_path: Path) -> None:
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        capture_output=True, text=True, timeout=110, cwd=tmp_path, check=False,
        # An editable install is an import hook, which mypy does not follow.
        env={**os.environ, "MYPYPATH": str(Path(__file__).resolve().parents[2])},
    )
    lines = sorted(
        int(line.split(":")[1]) for line in done.stdout.splitlines() if ": error:" in line
    )
    assert lines == [13, 14, 15], done.stdout
