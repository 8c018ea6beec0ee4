"""Schedules are stored when they are declared, so every process sees and steers them
before any worker pool starts; declaring is cheap, idempotent across processes, keeps a
paused schedule paused and survives a database that cannot be written for a moment."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from jobq import DurableQueue
from jobq.storage import SQLiteStorage
from jobq.testing import FakeClock
from tests.helpers import ROOT, MakeQueue

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp()


def declare_report(queue: DurableQueue, every: float = 60) -> None:
    @queue.periodic(every=every, name="report")
    def report() -> str:
        return "done"


def test_a_declared_schedule_is_seen_and_steered_before_any_worker(make_queue: MakeQueue) -> None:
    clock = FakeClock(T0 + 1)
    queue = make_queue(clock=clock)
    declare_report(queue)
    other = make_queue(clock=clock)  # another process on the same database: declares nothing
    [info] = other.schedules()
    assert (info.name, info.every, info.next_fire_at, info.paused) == ("report", 60, T0 + 60, False)
    assert other.pause_schedule("report").paused
    job = other.trigger_schedule("report")
    assert job.name == "report"
    clock.advance(600)
    assert queue.fire_due_schedules() == []  # paused from the other process


def test_redeclaring_changes_the_definition_and_keeps_it_paused(make_queue: MakeQueue) -> None:
    clock = FakeClock(T0 + 1)
    first = make_queue(clock=clock)
    declare_report(first, every=60)
    first.pause_schedule("report")
    clock.advance(30)
    second = make_queue(clock=clock)  # the next release declares it every 120 s
    declare_report(second, every=120)
    [info] = first.schedules()
    assert (info.every, info.paused, info.next_fire_at) == (120, True, T0 + 120)


@contextlib.contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another connection holds the database's write lock while inside."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def test_declaring_an_unchanged_schedule_takes_no_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with contextlib.closing(DurableQueue(path)) as first:
        declare_report(first)
    # sqlite3, as the lock holder: two SQLite libraries in one process ignore each other's locks
    storage = SQLiteStorage(path, driver="sqlite3", busy_timeout=0.05)
    with contextlib.closing(DurableQueue(storage)) as queue, write_lock_held(path):
        declare_report(queue)  # would fail to take the lock if it wrote
        assert [info.name for info in queue.schedules()] == ["report"]


def test_a_database_that_cannot_be_written_does_not_fail_the_declaration(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "jobs.db"
    # sqlite3, as the lock holder: two SQLite libraries in one process ignore each other's locks
    storage = SQLiteStorage(path, driver="sqlite3", busy_timeout=0.05)
    with contextlib.closing(DurableQueue(storage)) as queue:
        with write_lock_held(path), caplog.at_level(logging.WARNING, "jobq.schedules"):
            declare_report(queue)
        assert "schedule 'report' is declared but could not be stored yet" in caplog.text
        assert queue.schedules() == []
        queue.fire_due_schedules()  # what a worker pool does about once a second
        assert [info.name for info in queue.schedules()] == ["report"]


def test_an_inline_queue_stores_its_schedules_too(tmp_path: Path) -> None:
    with contextlib.closing(DurableQueue(tmp_path / "jobs.db", inline=True)) as queue:
        declare_report(queue)
        assert [info.name for info in queue.schedules()] == ["report"]
        assert queue.list() == []  # declaring enqueues nothing, even inline


DECLARING_MODULE = """
import sys
import jobq

queue = jobq.DurableQueue(sys.argv[1])

@queue.periodic("0 3 * * *", name="nightly")
def nightly() -> None: ...

queue.close()
print("declared")
"""


def test_processes_declaring_one_schedule_at_once_store_one_row(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    script = tmp_path / "declare.py"
    script.write_text(textwrap.dedent(DECLARING_MODULE))
    children = [
        subprocess.Popen(
            [sys.executable, str(script), str(path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for child in children:
        out, err = child.communicate(timeout=60)
        assert (child.returncode, out.strip()) == (0, "declared"), err
        assert "Traceback" not in err, err
    with contextlib.closing(DurableQueue(path)) as queue:
        [info] = queue.schedules()
        assert (info.name, info.cron, info.paused) == ("nightly", "0 3 * * *", False)
