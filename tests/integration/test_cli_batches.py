"""``jobq batch ID``, ``jobq batches`` and ``jobq cancel-batch ID``, as text and
``--json`` (``flask jobq batch`` in tests/integration/flask/test_batch_views.py)."""

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


def _batches(db: str) -> tuple[int, int]:
    """A finished batch (2 completed, 1 failed) and an open one with 2 pending jobs."""
    queue = DurableQueue(db, clock=FakeClock(T0))

    @queue.task("send", max_attempts=1)
    def send(n: int) -> None:
        if n == 0:
            raise jobq.Fail("bounced")

    @queue.task("report")
    def report(batch: jobq.BatchSummary) -> None: ...

    try:
        with queue.batch(on_complete=report, meta={"newsletter": 7}) as done:
            done.enqueue_many(send, [(0,), (1,), (2,)])
        queue.run_until_empty()
        still = queue.batch(on_failure=report)
        still.enqueue_many(send, [(3,), (4,)])
    finally:
        queue.close()
    return done.id, still.id


def test_batch_shows_counts_callbacks_and_meta(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "jobs.db")
    done, _still = _batches(db)
    code, out, _ = _run(capsys, "batch", str(done), "--db", db)
    assert code == 0
    assert f"batch {done}: finished" in out
    assert "3 in all: 0 pending, 0 processing, 2 completed, 1 failed, 0 cancelled" in out
    assert "on_complete report" in out
    assert '"newsletter": 7' in out
    code, out, _ = _run(capsys, "batch", str(done), "--db", db, "--json")
    record = json.loads(out)
    assert (record["completed"], record["failed"], record["finished"]) == (2, 1, True)
    assert record["meta"] == {"newsletter": 7}
    assert len(record["callback_job_ids"]) == 1
    code, out, err = _run(capsys, "batch", "999", "--db", db)
    assert code != 0
    assert "no batch with id 999" in err


def test_batches_lists_newest_first_and_cancel_batch_cancels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "jobs.db")
    done, still = _batches(db)
    code, out, _ = _run(capsys, "batches", "--db", db)
    lines = out.splitlines()
    assert code == 0
    assert lines[0].startswith(f"batch {still}  open")
    assert lines[1].startswith(f"batch {done}  finished")
    assert "3/3 ended" in lines[1]
    code, out, _ = _run(capsys, "batches", "--db", db, "--json", "--before", str(still))
    assert [b["id"] for b in json.loads(out)["batches"]] == [done]
    code, out, _ = _run(capsys, "cancel-batch", str(still), "--db", db)
    assert code == 0
    assert "2 jobs cancelled" in out
    code, out, _ = _run(capsys, "batch", str(still), "--db", db, "--json")
    record = json.loads(out)
    assert record["sealed"]
    assert record["finished"]
    assert record["cancelled"] == 2
