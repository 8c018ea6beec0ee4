"""The release of dead pools' jobs on this host, one step at a time: the
:class:`~jobq.worker.services.DeadPoolRescuer` driven with ``run_once(now)`` on a
real SQLite file, against real processes (this one, a live child, a reaped one),
and the ``/proc`` reading of :mod:`jobq.worker.identity`."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobq import DurableQueue, JobStatus, signals
from jobq.storage.workers import NewWorker, WorkerRegistry
from jobq.testing import FakeClock
from jobq.worker.identity import ProcessIdentity, process_gone, process_start, this_process
from jobq.worker.services import DeadPoolRescuer
from tests.helpers import wait_for

START = 1_800_000_000.0
LEASE = 300.0
ME = this_process()

pytestmark = pytest.mark.skipif(not ME.known, reason="needs Linux /proc")


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[DurableQueue]:
    made = DurableQueue(tmp_path / "jobs.db", clock=FakeClock(START), lease_seconds=LEASE)

    @made.task("work")
    def work() -> None:
        """Never run here."""

    yield made
    made.close()


@pytest.fixture
def live_child() -> Iterator[int]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


@pytest.fixture
def reaped_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def register(queue: DurableQueue, name: str, who: ProcessIdentity) -> str:
    """Register a pool of process ``who`` and lease it one job; its owner."""
    storage = queue.storage
    assert isinstance(storage, WorkerRegistry)
    owner = f"{who.host}:{who.pid}:{name}"
    storage.register_worker(
        NewWorker(
            owner,
            who.host,
            who.pid,
            name,
            ("default",),
            1,
            LEASE,
            who.boot_id,
            who.pid_namespace,
            who.process_start,
        ),
        now=START,
    )
    queue.get_task("work").enqueue()
    [job] = queue.storage.claim(["default"], owner=owner, now=START, lease_seconds=LEASE)
    assert job.lease_owner == owner
    return owner


def like_me(pid: int, **changes: Any) -> ProcessIdentity:
    values = {**ME.__dict__, "pid": pid, "process_start": process_start(pid), **changes}
    return ProcessIdentity(**values)


def still_held(queue: DurableQueue) -> set[str]:
    return {job.lease_owner or "" for job in queue.list(status=JobStatus.PROCESSING)}


def test_only_pools_of_dead_processes_on_this_host_boot_and_namespace_are_released(
    queue: DurableQueue, live_child: int, reaped_pid: int, caplog: pytest.LogCaptureFixture
) -> None:
    kept = {
        register(queue, "this-process", like_me(os.getpid())),
        register(queue, "live-child", like_me(live_child)),
        register(queue, "other-host", like_me(reaped_pid, host="elsewhere", process_start=1)),
        register(queue, "other-boot", like_me(reaped_pid, boot_id="another", process_start=1)),
        register(queue, "other-namespace", like_me(reaped_pid, pid_namespace=1, process_start=1)),
        register(
            queue,
            "unknown",
            like_me(reaped_pid, boot_id=None, pid_namespace=None, process_start=None),
        ),
    }
    dead = {
        register(queue, "reaped", like_me(reaped_pid, process_start=1)),
        # Our own pid, started at another time: the pid was reused by this process.
        register(queue, "reused", like_me(os.getpid(), process_start=ME.process_start - 1)),
    }
    heard: list[dict[str, Any]] = []

    def receiver(sender: object, **kwargs: Any) -> None:
        heard.append(kwargs)

    woken: list[bool] = []
    service = DeadPoolRescuer(
        queue, next_run=START, owner="me:1:mine", on_rescued=lambda: woken.append(True)
    )
    assert service.active
    with (
        caplog.at_level(logging.WARNING, "jobq.worker"),
        signals.job_lease_expired.connected_to(receiver),
    ):
        released = service.run_once(START + 1)
    assert len(released.requeued) == 2
    assert still_held(queue) == kept
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert sorted(r.owner for r in warnings) == sorted(dead)
    assert sorted(id for h in heard for id in h["requeued"]) == sorted(released.requeued)
    assert woken == [True]
    for job_id in released.requeued:
        job = queue.get(job_id)
        assert job.status is JobStatus.PENDING
        assert job.error is not None
        assert job.error.type == "WorkerDied"
    # Their rows went: the next look finds nothing more to do.
    assert service.run_once(START + 2).total == 0
    assert {w.name for w in queue.workers(max_age=1e6)} == {
        "this-process",
        "live-child",
        "other-host",
        "other-boot",
        "other-namespace",
        "unknown",
    }


def test_a_live_pid_is_never_gone(live_child: int, reaped_pid: int) -> None:
    assert not process_gone(os.getpid(), ME.process_start or 0)
    assert not process_gone(live_child, process_start(live_child) or 0)
    assert process_gone(live_child, (process_start(live_child) or 0) + 1)  # reused pid
    assert process_gone(reaped_pid, 1)
    assert not process_gone(0, 0)
    if os.getuid() != 0:  # pid 1 is someone else's: signalling it is refused, it lives
        assert not process_gone(1, process_start(1) or 0)


def test_a_killed_process_not_yet_reaped_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = process_start(child.pid)
    assert started is not None
    child.kill()
    try:
        # A zombie until reaped: kill(pid, 0) still succeeds on it.
        wait_for(lambda: process_gone(child.pid, started), "the killed child seen gone")
    finally:
        child.wait()


def test_the_start_time_is_read_past_a_command_with_spaces_and_parentheses(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    fields = ["S"] + [str(n) for n in range(4, 22)] + ["987654"] + ["0"] * 30
    (tmp_path / "42" / "stat").write_text(f"42 (odd ) (name) {' '.join(fields)}\n")
    assert process_start(42, proc=tmp_path) == 987654
    assert process_start(43, proc=tmp_path) is None


def test_the_check_is_inactive_where_the_identity_is_unknown(
    queue: DurableQueue, tmp_path: Path
) -> None:
    service = DeadPoolRescuer(queue, next_run=START, owner="x:1:y")
    service.me = this_process(proc=tmp_path)  # no /proc there
    assert (service.me.boot_id, service.me.pid_namespace, service.me.process_start) == (
        None,
        None,
        None,
    )
    assert service.me.host == socket.gethostname()
    assert not service.active
