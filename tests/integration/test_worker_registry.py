"""The registry of live worker pools with real threads and real processes: pools
register as they start, follow ``set_concurrency`` and stopping, unregister on a
clean stop; a killed process's pool is deleted by another pool of the same host
once it sees the pid gone (ageing out over the lease period is the contract
tests' part, at a later ``now`` rather than by waiting)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from jobq import DurableQueue, WorkerInfo
from tests.helpers import BOUNDED_WAIT, MakeQueue, eventually, started_process, wait_for
from tests.integration._cli_tasks import register

DEADLINE = 30.0


def only(queue: DurableQueue) -> WorkerInfo:
    [info] = queue.workers()
    return info


def test_a_pool_is_live_while_it_runs_and_gone_when_it_stops(make_queue: MakeQueue) -> None:
    queue = make_queue(poll_interval=0.005)
    release = threading.Event()
    started = threading.Event()

    @queue.task("hold", queue="slow")
    def hold() -> None:
        started.set()
        release.wait(BOUNDED_WAIT)

    pool = queue.start_workers(concurrency=2, name="reports", queues=["slow"])
    stopper: threading.Thread | None = None
    try:
        eventually(lambda: len(queue.workers()) == 1)
        info = only(queue)
        assert info.owner == pool.owner == f"{socket.gethostname()}:{os.getpid()}:reports"
        assert (info.host, info.pid, info.name) == (socket.gethostname(), os.getpid(), "reports")
        assert (info.queues, info.concurrency, info.stopping) == (("slow",), 2, False)

        pool.set_concurrency(5)
        eventually(lambda: only(queue).concurrency == 5)

        hold.enqueue()
        assert started.wait(BOUNDED_WAIT)
        assert only(queue).leased == 1

        stopper = threading.Thread(target=pool.stop, kwargs={"timeout": BOUNDED_WAIT})
        stopper.start()
        eventually(lambda: only(queue).stopping)  # draining its running job
    finally:
        release.set()
        if stopper is not None:
            stopper.join(BOUNDED_WAIT + 5)
        pool.stop(timeout=BOUNDED_WAIT)
    assert queue.workers() == []  # at once, no ageing needed


def test_two_pools_of_one_process_are_two_workers(make_queue: MakeQueue) -> None:
    queue = make_queue(poll_interval=0.005)
    first = queue.start_workers(concurrency=1)
    second = queue.start_workers(concurrency=3)
    try:
        eventually(lambda: len(queue.workers()) == 2)
        assert {w.owner: w.concurrency for w in queue.workers()} == {
            first.owner: 1,
            second.owner: 3,
        }
    finally:
        first.stop(timeout=BOUNDED_WAIT)
    assert [w.owner for w in queue.workers()] == [second.owner]
    second.stop(timeout=BOUNDED_WAIT)
    assert queue.workers() == []


# -- real `jobq worker` processes on one SQLite file --------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "jobs.db")


@pytest.fixture
def queue(db: str) -> Iterator[DurableQueue]:
    made = DurableQueue(db)
    register(made)
    yield made
    made.close()


def test_worker_processes_register_and_a_killed_one_ages_out(
    tmp_path: Path, db: str, queue: DurableQueue
) -> None:
    args = [sys.executable, "-m", "jobq.cli", "worker", "--db", db, "--import"]
    args += ["tests.integration._cli_tasks", "--concurrency", "2"]
    env = {**os.environ, "JOBQ_CLI_TEST_DIR": str(tmp_path)}
    with ExitStack() as stack:
        killed, stopped = (
            stack.enter_context(started_process(args, log=tmp_path / f"{name}.log", env=env))
            for name in ("killed", "stopped")
        )

        def pids() -> set[int]:
            assert killed.poll() is None
            assert stopped.poll() is None
            return {info.pid for info in queue.workers()}

        wait_for(lambda: pids() == {killed.pid, stopped.pid}, "both pools registered")
        assert {info.concurrency for info in queue.workers()} == {2}

        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(DEADLINE)
        # A killed pool cannot say goodbye; the other pool on this host sees its pid
        # gone and deletes its row (releasing its jobs) within about a second, rather
        # than letting it age out over its lease period (which the contract tests show).
        wait_for(
            lambda: {info.pid for info in queue.workers()} == {stopped.pid},
            "the other pool deleted the killed pool's row",
        )

        # A clean stop unregisters at once.
        stopped.send_signal(signal.SIGTERM)
        assert stopped.wait(DEADLINE) == 0, (tmp_path / "stopped.log").read_text()
        assert queue.workers() == []


def test_jobq_workers_prints_a_table_and_json(
    db: str, queue: DurableQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobq.cli import main

    assert main(["workers", "--db", db]) == 0
    assert "no live workers" in capsys.readouterr().out
    pool = queue.start_workers(concurrency=2, name="nightly")
    try:
        eventually(lambda: len(queue.workers()) == 1)
        assert main(["workers", "--db", db, "--json"]) == 0
        [shown] = json.loads(capsys.readouterr().out)["workers"]
        assert shown == queue.workers()[0].as_dict()
        assert (shown["name"], shown["pid"], shown["concurrency"]) == ("nightly", os.getpid(), 2)
        assert main(["workers", "--db", db]) == 0
        header, row = capsys.readouterr().out.splitlines()
        assert header.split()[:6] == ["HOST", "PID", "NAME", "QUEUES", "THREADS", "LEASED"]
        assert row.split()[:3] == [socket.gethostname(), str(os.getpid()), "nightly"]
        assert row.split()[-1] == "running"
    finally:
        pool.stop(timeout=BOUNDED_WAIT)


def test_busy_threads_are_shown_at_the_next_heartbeat(
    make_queue: MakeQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobq.cli.commands import show_workers

    queue = make_queue(poll_interval=0.005, lease_seconds=0.6)  # a heartbeat every 0.2 s
    release = threading.Event()
    started = threading.Event()

    @queue.task("hold", queue="slow")
    def hold() -> None:
        started.set()
        release.wait(BOUNDED_WAIT)

    pool = queue.start_workers(concurrency=2, name="reports", queues=["slow"])
    try:
        job = hold.enqueue()
        assert started.wait(BOUNDED_WAIT)
        eventually(lambda: len(queue.workers()) == 1 and only(queue).threads != ())
        [thread] = only(queue).threads
        assert (thread.job_id, thread.task, thread.stuck_since) == (job.id, "hold", None)
        assert thread.thread.startswith("jobq-reports-worker-")
        assert thread.started_at <= queue.clock.now()
        shown = json.loads(show_workers(queue, as_json=True))["workers"][0]["threads"]
        assert shown == [thread.as_dict()]
        lines = show_workers(queue).splitlines()
        busy = lines[lines.index("") + 1 :]
        assert busy[0].split()[:4] == ["POOL", "THREAD", "JOB", "TASK"]
        assert busy[1].split()[:4] == [pool.owner, thread.thread, str(job.id), "hold"]
    finally:
        release.set()
        pool.stop(timeout=BOUNDED_WAIT)
    assert queue.workers() == []
