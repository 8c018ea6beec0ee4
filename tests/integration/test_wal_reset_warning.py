"""The SQLite WAL-reset warning: once per process, only when another process has the
same database file open while this process's SQLite has the bug, saying what to do;
and apsw, free of the bug, used on its own when it is installed.

Another process is a real child holding the file open. The library version is
injected (the storage's ``affected_by_wal_reset_bug``) so that the tests mean the
same wherever Python's own SQLite is already fixed.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobq
from jobq import DurableQueue
from jobq.storage import SQLiteStorage
from jobq.storage.sqlite import sharing
from jobq.worker import process
from jobq.worker.services import WalResetCheck
from tests.helpers import BOUNDED_WAIT, ROOT, wait_for

WARNING = "has the WAL-reset bug of SQLite 3.7.0 to 3.51.2"

HOLDER = """
import sys
import jobq

queue = jobq.DurableQueue(sys.argv[1], driver=sys.argv[2])
queue.task("noop")(lambda: None)
queue.enqueue("noop")
print("ready", flush=True)
sys.stdin.readline()
queue.close()
"""


@pytest.fixture(autouse=True)
def not_warned_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a fresh process would: not warned."""
    monkeypatch.setattr(process, "_warned_about_wal_reset", False)


@pytest.fixture
def affected(monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite3's library has the bug, whatever its real version here."""
    monkeypatch.setattr(SQLiteStorage, "affected_by_wal_reset_bug", property(lambda self: True))


@contextlib.contextmanager
def another_process(path: Path, driver: str = "sqlite3") -> Iterator[int]:
    """A child process that has ``path`` open (and wrote to it) while inside; its pid."""
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(path), driver],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        yield child.pid
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(BOUNDED_WAIT)
        child.stdout.close()  # type: ignore[union-attr]


def check(queue: DurableQueue) -> WalResetCheck:
    """A pool's check, run once now."""
    service = WalResetCheck(queue, next_run=0.0)
    assert service.tick(1.0)
    return service


def test_one_process_alone_is_not_warned(
    tmp_path: Path, affected: None, caplog: pytest.LogCaptureFixture
) -> None:
    with contextlib.closing(DurableQueue(tmp_path / "jobs.db", driver="sqlite3")) as queue:
        service = check(queue)
        assert not service.done  # it looks again later
        assert queue.storage.other_processes() == set()  # type: ignore[attr-defined]
    assert WARNING not in caplog.text


def test_another_process_on_the_file_is_warned_about_once(
    tmp_path: Path, affected: None, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "jobs.db"
    with contextlib.closing(DurableQueue(path, driver="sqlite3")) as queue:
        with another_process(path) as pid, caplog.at_level(logging.WARNING, "jobq.worker"):
            assert queue.storage.other_processes() == {pid}  # type: ignore[attr-defined]
            assert check(queue).done
            assert check(queue).done  # a second pool, or the next look: no second warning
        [record] = [r for r in caplog.records if WARNING in r.getMessage()]
    message = record.getMessage()
    assert f"process {pid} also has {path} open" in message
    assert "SQLite 3." in message
    if jobq.storage.sqlite.driver.apsw_installed():
        assert "remove that option (or JOBQ_DRIVER) and jobq uses apsw's fixed SQLite" in message
    else:
        assert 'pip install "jobq[apsw]"' in message
        assert "SQLite 3.51.3 or newer" in message


def test_a_worker_pool_warns_when_it_starts_beside_another_process(
    tmp_path: Path, affected: None, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "jobs.db"
    with contextlib.closing(DurableQueue(path, driver="sqlite3")) as queue:
        queue.task("noop")(lambda: None)
        with another_process(path), caplog.at_level(logging.WARNING, "jobq.worker"):
            pool = queue.start_workers(1)
            try:
                wait_for(lambda: WARNING in caplog.text, "the warning", BOUNDED_WAIT)
            finally:
                pool.stop(5.0)
    assert caplog.text.count(WARNING) == 1


def test_apsw_is_never_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("apsw")
    path = tmp_path / "jobs.db"
    with contextlib.closing(DurableQueue(path)) as queue:
        assert queue.storage.driver == "apsw"  # type: ignore[attr-defined]
        with another_process(path, "apsw"):
            assert check(queue).done  # nothing to look for, ever
    assert WARNING not in caplog.text


def test_a_system_that_does_not_tell_is_warned_all_the_same(
    tmp_path: Path,
    affected: None,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sharing, "PROC_LOCKS", str(tmp_path / "no-such-file"))
    with contextlib.closing(DurableQueue(tmp_path / "jobs.db", driver="sqlite3")) as queue:
        assert queue.storage.other_processes() is None  # type: ignore[attr-defined]
        assert check(queue).done
    assert "this system does not tell whether other processes write" in caplog.text


def test_lock_holders_are_read_from_proc_locks() -> None:
    text = (
        "1: POSIX  ADVISORY  READ 4242 fe:00:77 128 128\n"
        "2: POSIX  ADVISORY  READ 4242 fe:00:78 1073741826 1073742335\n"
        "3: FLOCK  ADVISORY  WRITE 5151 fe:00:77 0 EOF\n"
        "4: OFDLCK ADVISORY  READ -1 fe:00:77 0 EOF\n"
        "5: -> POSIX  ADVISORY  WRITE 6161 fe:00:77 0 EOF\n"
        "6: POSIX  ADVISORY  WRITE 7171 fe:00:99 0 EOF\n"
        "7: POSIX  ADVISORY  READ 0 08:01:78 0 EOF\n"
    )
    assert sharing.lock_holders({77, 78}, text) == {4242, 0}


# -- which driver "auto" picks --------------------------------------------------------------


def test_auto_uses_apsw_when_installed_and_sqlite3_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("apsw")
    with contextlib.closing(DurableQueue(tmp_path / "a.db")) as queue:
        assert queue.storage.driver == "apsw"  # type: ignore[attr-defined]
    with contextlib.closing(DurableQueue(tmp_path / "b.db", driver="sqlite3")) as queue:
        assert queue.storage.driver == "sqlite3"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "apsw", None)  # as if it were not installed
    with contextlib.closing(DurableQueue(tmp_path / "c.db")) as queue:
        assert queue.storage.driver == "sqlite3"  # type: ignore[attr-defined]


def test_auto_follows_the_driver_a_file_is_already_open_with(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with (
        contextlib.closing(SQLiteStorage(path, driver="sqlite3")),
        contextlib.closing(DurableQueue(path)) as queue,
    ):
        assert queue.storage.driver == "sqlite3"  # type: ignore[attr-defined]
