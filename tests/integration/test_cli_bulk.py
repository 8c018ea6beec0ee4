"""``jobq retry|cancel|delete`` with filters on real SQLite files: through
``main(argv)`` in-process, and as a real process on a pseudo-terminal for the
confirmation question."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobq import DurableQueue, JobStatus
from jobq.cli import main
from tests.helpers import ROOT
from tests.integration._cli_tasks import register

DEADLINE = 30.0  # real seconds any one step may take on a busy machine


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    def invoke(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "jobs.db")


@pytest.fixture
def queue(db: str) -> Iterator[DurableQueue]:
    queue = DurableQueue(db)
    register(queue)
    yield queue
    queue.close()


def _cancelled(queue: DurableQueue, values: range) -> list[int]:
    ids = [queue.get_task("record").enqueue(n=n).id for n in values]
    for job_id in ids:
        queue.cancel(job_id)
    return ids


def test_retry_cancel_delete_by_filter_with_yes_and_json(
    run: Callable[..., tuple[int, str, str]], db: str, queue: DurableQueue
) -> None:
    ids = _cancelled(queue, range(5))
    argv = ["--status", "cancelled", "--task", "record", "--arg", "n=3", "--yes"]
    code, out, _ = run("retry", "--db", db, *argv)
    assert code == 0
    assert out.startswith("1 job will run again\n")
    assert "task 'record' is not registered here" in out  # --db: no code, no positions
    assert queue.get(ids[3]).status is JobStatus.PENDING
    code, out, _ = run("retry", "--db", db, "--status", "cancelled", "--dry-run", "--json")
    assert json.loads(out) == {
        "action": "retry",
        "dry_run": True,
        "matched": 4,
        "changed": 0,
        "skipped": 0,
    }
    assert queue.count(status="cancelled") == 4
    code, out, _ = run("cancel", "--db", db, "--queue", "default", "--yes")
    assert (code, out) == (0, "1 job cancelled\n")
    code, out, _ = run("delete", "--db", db, "--status", "cancelled", "--older-than", "0", "-y")
    assert (code, out) == (0, "5 jobs deleted\n")
    assert queue.count() == 0
    code, out, _ = run("delete", "--db", db, "--status", "failed", "--yes")
    assert (code, out) == (0, "0 jobs match; nothing done\n")


def test_one_id_still_works_and_an_id_with_filters_is_refused(
    run: Callable[..., tuple[int, str, str]], db: str, queue: DurableQueue
) -> None:
    job_id = queue.get_task("record").enqueue(1).id
    assert run("cancel", str(job_id), "--db", db)[1] == f"job {job_id} cancelled\n"
    code, _, err = run("retry", str(job_id), "--db", db, "--status", "cancelled")
    assert code == 2
    assert "give a job ID or filter options, not both" in err
    code, _, err = run("retry", "--db", db)
    assert code == 2
    assert "give at least one filter" in err
    assert "--status" in err
    code, _, err = run("delete", "--db", db, "--arg", "n")
    assert code == 2
    assert "KEY=VALUE" in err
    code, _, err = run("retry", "--db", db, "--status", "cancelled", "--delay", "1h", "--yes")
    assert code == 2
    assert "--delay works with one job ID only" in err
    assert queue.get(job_id).status is JobStatus.CANCELLED


def test_without_yes_off_a_terminal_nothing_is_done(
    run: Callable[..., tuple[int, str, str]], db: str, queue: DurableQueue
) -> None:
    _cancelled(queue, range(3))
    code, out, err = run("delete", "--db", db, "--status", "cancelled")
    assert code == 2
    assert out == ""
    assert "3 jobs match" in err
    assert "add --yes" in err
    assert queue.count() == 3


def _read_until(fd: int, marker: bytes, seen: bytearray) -> None:
    deadline = time.monotonic() + DEADLINE
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, bytes(seen)
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, bytes(seen)
            seen += chunk


@pytest.mark.parametrize(("answer", "left"), [(b"y\n", 0), (b"n\n", 1_234)])
def test_on_a_terminal_it_asks_first(
    db: str, queue: DurableQueue, answer: bytes, left: int
) -> None:
    task = queue.get_task("record")
    task.enqueue_many([(n,) for n in range(1_234)])
    queue.cancel_all(status="pending")
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "jobq.cli", "delete", "--db", db, "--status", "cancelled"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=ROOT,
    )
    os.close(follower)
    seen = bytearray()
    try:
        _read_until(leader, b"Delete 1,234 jobs? [y/N] ", seen)
        os.write(leader, answer)
        _read_until(leader, b"deleted" if left == 0 else b"nothing done", seen)
        assert child.wait(timeout=DEADLINE) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(leader)
    assert queue.count() == left
