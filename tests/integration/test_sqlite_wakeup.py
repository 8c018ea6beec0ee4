"""The SQLite wake-up channel with real processes: a job made runnable in one
process wakes idle pools of the others at once, without their poll."""

from __future__ import annotations

import contextlib
import logging
import os
import queue as queue_module
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import jobq
from jobq.storage import SQLiteStorage
from jobq.storage.base import NewJob, Notifier
from jobq.storage.sqlite.wakeup import SUFFIX
from tests.helpers import wait_for

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "AF_UNIX"), reason="no Unix datagram sockets: pools poll"
)

CHILD = Path(__file__).with_name("_wakeup_child.py")
ROOT = Path(__file__).resolve().parents[2]


def child(mode: str, database: str, folder: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(CHILD), mode, database, str(folder)], env=env)


def sockets(database: str) -> list[str]:
    return sorted(n for n in os.listdir(database + SUFFIX) if n.endswith(".sock"))


def test_a_job_enqueued_in_another_process_wakes_a_subscriber(tmp_path: Path) -> None:
    database = str(tmp_path / "jobs.db")
    storage = SQLiteStorage(database)
    heard: queue_module.Queue[str | None] = queue_module.Queue()
    unsubscribe = storage.subscribe(heard.put)  # type: ignore[attr-defined]
    try:
        # Nothing in this process polls: only the channel can deliver this.
        child("enqueue", database, tmp_path).wait(60)
        assert heard.get(timeout=30) == "mail"
    finally:
        unsubscribe()
        storage.close()
    assert sockets(database) == []  # the last subscriber to leave removes its socket


def test_an_idle_pool_runs_another_process_job_without_waiting_for_its_poll(tmp_path: Path) -> None:
    database = str(tmp_path / "jobs.db")
    pool = child("pool", database, tmp_path)  # polls every 30 s
    try:
        wait_for(lambda: (tmp_path / "ready").exists(), "the pool started", timeout=60)
        queue = jobq.DurableQueue(database)

        @queue.task("record", queue="mail")
        def record() -> None: ...

        record.enqueue()
        wait_for(lambda: (tmp_path / "ran.txt").exists(), "the job ran", timeout=25)
        # The pool heard of the job through the channel. Which came first, the wake-up
        # or the claim, is not checked: the pool's one-second upkeep tick (the check
        # for dead pools on this host) also looks for work and may claim it first.
        woken = (tmp_path / "woken.txt").read_text().split()
        assert woken[0] == "mail"
        queue.close()
    finally:
        (tmp_path / "stop").touch()
        assert pool.wait(60) == 0


def test_the_socket_of_a_killed_process_is_removed(tmp_path: Path) -> None:
    database = str(tmp_path / "jobs.db")
    SQLiteStorage(database).close()
    listener = child("subscribe", database, tmp_path)
    wait_for(lambda: (tmp_path / "subscribed").exists(), "the child subscribed", timeout=60)
    [name] = sockets(database)
    assert name.startswith(f"{listener.pid}-")
    listener.send_signal(signal.SIGKILL)  # no chance to remove its socket
    listener.wait(60)
    assert sockets(database) == [name]
    with SQLiteStorage(database) as storage:
        storage.enqueue(NewJob(name="t", payload="{}"), now=time.time())
    assert sockets(database) == []  # the sender met a refusal and removed it


def test_without_the_channel_pools_poll_and_a_warning_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = str(tmp_path / "jobs.db")
    Path(database + SUFFIX).write_text("not a folder")  # the channel cannot be made
    with caplog.at_level(logging.WARNING, logger="jobq.storage"):
        queue = jobq.DurableQueue(database, poll_interval=0.01)
    assert not isinstance(queue.storage, Notifier)
    [warning] = [r for r in caplog.records if "wake-up channel" in r.getMessage()]
    assert "is not a folder" in warning.getMessage()
    assert "polling" in warning.getMessage()
    ran: queue_module.Queue[int] = queue_module.Queue()

    @queue.task("record", queue="mail")
    def record() -> None:
        ran.put(os.getpid())

    pool = queue.start_workers(concurrency=1)
    try:
        child("enqueue", database, tmp_path).wait(60)
        assert ran.get(timeout=30) == os.getpid()  # found by polling
    finally:
        pool.stop()
        queue.close()


def test_the_channel_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with SQLiteStorage(tmp_path / "a.db", wakeup=False) as storage:
        assert not isinstance(storage, Notifier)
    monkeypatch.setenv("JOBQ_SQLITE_WAKEUP", "off")
    with SQLiteStorage(tmp_path / "b.db") as storage:
        assert not isinstance(storage, Notifier)
    assert not (tmp_path / f"b.db{SUFFIX}").exists()
    with SQLiteStorage(tmp_path / "c.db", wakeup=True) as storage:
        assert isinstance(storage, Notifier)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_listens_on_a_socket_of_its_own(tmp_path: Path) -> None:
    """As under gunicorn --preload: the queue is opened before the fork, pools
    start in the child. The parent's subscription stays the parent's."""
    database = str(tmp_path / "jobs.db")
    queue = jobq.DurableQueue(database)

    @queue.task("record", queue="mail")
    def record() -> None:
        (tmp_path / f"ran-{os.getpid()}.txt").touch()

    heard: queue_module.Queue[str | None] = queue_module.Queue()
    unsubscribe = queue.storage.subscribe(heard.put)  # type: ignore[attr-defined]
    [parent_socket] = sockets(database)
    pid = os.fork()
    if pid == 0:  # the child: a pool of its own, which polls every 30 s
        code = 1
        try:
            queue.poll_interval = 30.0
            pool = queue.start_workers(concurrency=1)
            (tmp_path / "ready").touch()
            deadline = time.monotonic() + 60
            while not (tmp_path / f"ran-{os.getpid()}.txt").exists():
                if time.monotonic() > deadline:
                    raise SystemExit(3)
                time.sleep(0.01)
            pool.stop()
            code = 0
        finally:
            os._exit(code)
    try:
        wait_for(lambda: (tmp_path / "ready").exists(), "the child's pool started", timeout=60)
        names = sockets(database)
        assert parent_socket in names
        [child_socket] = [n for n in names if n != parent_socket]
        assert child_socket.startswith(f"{pid}-")
        # From a third process: the child's pool runs it, the parent hears of it.
        child("enqueue", database, tmp_path).wait(60)
        assert heard.get(timeout=30) == "mail"
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert sockets(database) == [parent_socket]  # the child's pool removed its own
    finally:
        unsubscribe()
        queue.close()


def test_a_database_path_too_long_for_a_socket_address_still_works(tmp_path: Path) -> None:
    folder = tmp_path / ("a-folder-with-a-long-name-" * 3) / ("and-another-one-" * 3)
    database = str(folder / "jobs.db")
    assert len(database + SUFFIX) > 110  # a Unix socket's path holds at most 104 to 108 bytes
    storage = SQLiteStorage(database)
    if not isinstance(storage, Notifier):
        storage.close()
        pytest.skip("no /proc/self/fd here: the channel is off for paths this long")
    heard: queue_module.Queue[str | None] = queue_module.Queue()
    unsubscribe = storage.subscribe(heard.put)
    try:
        child("enqueue", database, tmp_path).wait(60)
        assert heard.get(timeout=30) == "mail"
    finally:
        unsubscribe()
        storage.close()


def test_a_socket_that_cannot_be_bound_leaves_the_pool_polling(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = str(tmp_path / "jobs.db")
    queue = jobq.DurableQueue(database)
    folder = Path(database + SUFFIX)
    folder.rmdir()
    folder.write_text("not a folder")  # after the storage was opened
    ran: queue_module.Queue[int] = queue_module.Queue()

    @queue.task("record", queue="mail")
    def record() -> None:
        ran.put(os.getpid())

    with caplog.at_level(logging.WARNING, logger="jobq.storage"):
        pool = queue.start_workers(concurrency=1)  # starts all the same
    try:
        assert any("cannot listen on the wake-up channel" in r.getMessage() for r in caplog.records)
        child("enqueue", database, tmp_path).wait(60)
        assert ran.get(timeout=30) == os.getpid()  # found by polling
    finally:
        pool.stop()
        queue.close()


def test_the_folder_and_sockets_get_the_database_permissions(tmp_path: Path) -> None:
    database = str(tmp_path / "jobs.db")
    old_umask = os.umask(0o077)
    try:
        storage = SQLiteStorage(database, file_mode=0o660)
    finally:
        os.umask(old_umask)
    unsubscribe = storage.subscribe(lambda queue_name: None)  # type: ignore[attr-defined]
    try:
        folder = Path(database + SUFFIX)
        assert folder.stat().st_mode & 0o777 == 0o770
        [name] = sockets(database)
        assert (folder / name).stat().st_mode & 0o777 == 0o660
    finally:
        unsubscribe()
        storage.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIOCOUTQ is Linux's")
def test_a_wake_up_still_unread_is_not_sent_again(tmp_path: Path) -> None:
    database = str(tmp_path / "jobs.db")
    storage = SQLiteStorage(database)
    channel = storage._wake
    assert channel is not None
    # Another process's socket, whose reader is slow: nothing reads it until the end.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(channel._address("1-slow.sock"))
    try:
        channel.notify("mail")
        channel.notify("mail")  # the first is unread: it will wake that pool after this commit
        channel.notify("reports")  # another queue: that pool may not take "mail" jobs
        channel.notify(None)
        listener.setblocking(False)
        received = []
        with contextlib.suppress(BlockingIOError):
            while True:
                received.append(listener.recv(64))
        assert received == [b"mail", b"reports", b""]
        channel.notify("mail")  # all read now: sent again
        assert listener.recv(64) == b"mail"
    finally:
        listener.close()
        storage.close()


def test_pools_keep_polling_for_processes_the_channel_does_not_reach(tmp_path: Path) -> None:
    # A process with JOBQ_SQLITE_WAKEUP=0 (or an older jobq) sends no wake-up, and a
    # delayed job falls due without one: the channel must not slow the poll that
    # finds them, as LISTEN/NOTIFY may on PostgreSQL, where every enqueue notifies.
    queue = jobq.DurableQueue(str(tmp_path / "jobs.db"), poll_interval=0.01)
    try:
        assert isinstance(queue.storage, Notifier)
        pool = queue.start_workers(concurrency=1)
        assert pool._idle_wait == 0.01
    finally:
        queue.close()
