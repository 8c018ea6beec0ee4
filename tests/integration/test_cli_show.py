"""``jobq show ID``: a job, its attempts that did not
complete with their errors (terminal-safe), and its timeline; or ``--json``."""

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


def _failed_twice(db: str) -> int:
    clock = FakeClock(T0)
    queue = DurableQueue(db, clock=clock)

    @queue.task("send", max_attempts=2, backoff=60)
    def send() -> None:
        raise ConnectionError(f"refused\x1b[2J on attempt {jobq.current_job().attempt}")

    try:
        job_id = send.enqueue().id
        queue.run_until_empty()
        clock.advance(90)
        queue.run_until_empty()
    finally:
        queue.close()
    return job_id


def test_show_prints_each_attempt_with_its_error_and_the_timeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "jobs.db")
    job_id = _failed_twice(db)

    code, out, _ = _run(capsys, "show", str(job_id), "--db", db)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"job {job_id}: send, queue default"
    assert "  status     failed, attempt 2 of 2" in lines
    assert "attempts that did not complete:" in lines
    attempt_rows = [line for line in lines if line.startswith("  attempt ")]
    assert [row.split()[:3] for row in attempt_rows] == [
        ["attempt", "1", "failed"],
        ["attempt", "2", "failed"],
    ]
    assert "2026-06-01 12:00:00 -> 2026-06-01 12:00:00" in attempt_rows[0]
    assert "    ConnectionError: refused\\x1b[2J on attempt 2" in lines  # escaped, not run
    assert "\x1b" not in out
    assert any(line.startswith("      Traceback (most recent call last)") for line in lines)
    timeline = lines[lines.index("timeline (UTC):") + 1 :]
    assert [line.split()[2] for line in timeline] == [
        "enqueued",
        "claimed",
        "failed",
        "claimed",
        "failed",
    ]

    code, out, _ = _run(capsys, "show", str(job_id), "--db", db, "--json")
    assert code == 0
    body = json.loads(out)
    assert body["job"]["id"] == job_id
    assert [a["attempt"] for a in body["attempts"]] == [1, 2]
    assert body["attempts"][1]["error"]["message"] == "refused\x1b[2J on attempt 2"
    assert body["timeline"][-1]["kind"] == "failed"


def test_show_an_unknown_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "jobs.db")
    DurableQueue(db).close()
    code, _, err = _run(capsys, "show", "77", "--db", db)
    assert code != 0
    assert "77" in err


def test_show_says_what_a_job_waits_for_and_what_waits_for_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "jobs.db")
    queue = DurableQueue(db, clock=FakeClock(T0))

    @queue.task("step")
    def step(value: int = 0) -> int:
        return value + 1

    try:
        chain = queue.chain(step.s(), step.s())
    finally:
        queue.close()
    first, second = chain.job_ids

    code, out, _ = _run(capsys, "show", str(second), "--db", db)
    assert code == 0
    assert "  waiting    for 1 job to complete" in out.splitlines()
    assert f"  after      {first} (if one fails: cancel)" in out.splitlines()
    assert f"  gets the result of job {first} first" in out.splitlines()
    code, out, _ = _run(capsys, "show", str(first), "--db", db)
    assert f"  before     {second}" in out.splitlines()
    code, out, _ = _run(capsys, "show", str(second), "--db", db, "--json")
    shown = json.loads(out)
    assert (shown["depends_on"], shown["dependents"]) == ([first], [])
    assert shown["job"]["waiting_for"] == 1
    assert shown["job"]["result_from"] == first
