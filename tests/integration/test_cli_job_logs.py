"""``jobq logs ID``: a job's log lines as a terminal-safe text, or ``--json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import jobq
from jobq import DurableQueue
from jobq.cli import main
from jobq.testing import FakeClock

T0 = 1_780_315_200.0  # 2026-06-01 12:00:00 UTC


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_logs_plain_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "jobs.db")
    clock = FakeClock(T0)
    queue = DurableQueue(db, clock=clock)

    @queue.task("send", max_attempts=2, backoff=60)
    def send() -> None:
        job = jobq.current_job()
        job.log(f"attempt {job.attempt}: connecting\x1b]52;c;ZXZpbA==\x07")
        if job.attempt == 1:
            raise ConnectionError("refused")

    try:
        job_id = send.enqueue().id
        queue.run_until_empty()
        clock.advance(90)
        queue.run_until_empty()
        quiet = send.enqueue().id
    finally:
        queue.close()

    code, out, _ = _run(capsys, "logs", str(job_id), "--db", db)
    assert code == 0
    assert out == (
        "2026-06-01 12:00:00  attempt 1  attempt 1: connecting\\x1b]52;c;ZXZpbA==\\x07\n"
        "2026-06-01 12:01:30  attempt 2  attempt 2: connecting\\x1b]52;c;ZXZpbA==\\x07\n"
    )

    code, out, _ = _run(capsys, "logs", str(job_id), "--db", db, "--json")
    assert code == 0
    assert json.loads(out) == {
        "job_id": job_id,
        "dropped": 0,
        "lines": [
            {
                "number": 1,
                "attempt": 1,
                "logged_at": T0,
                "message": "attempt 1: connecting\x1b]52;c;ZXZpbA==\x07",
            },
            {
                "number": 2,
                "attempt": 2,
                "logged_at": T0 + 90,
                "message": "attempt 2: connecting\x1b]52;c;ZXZpbA==\x07",
            },
        ],
    }

    assert _run(capsys, "logs", str(quiet), "--db", db)[:2] == (
        0,
        f"job {quiet} has no log lines\n",
    )
    code, out, err = _run(capsys, "logs", "999", "--db", db)
    assert (code, out) == (2, "")
    assert "no job with id 999" in err
