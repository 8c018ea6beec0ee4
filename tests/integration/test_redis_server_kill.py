"""No accepted job lost when the Redis server itself is SIGKILLed and restarted.

A throwaway ``redis-server`` of the test's own (``appendonly yes``, ``appendfsync
always``: every write is on disk before the server answers), in the test's folder,
on a free port. One process enqueues jobs one by one while two worker processes run
them; the server is killed at random moments (while jobs are enqueued, and while
they are processed), every other time with a worker process (replaced at once), and
started again on the same folder and port. Afterwards every enqueue that returned an
id is in the database (jobs lost: 0), the workers came back by themselves (the pool
retries after a StorageError) and every job completed.
Children are the real thing (tests/integration/_redis_child.py), each killed and
reaped whatever happens; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Container, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobq import JobStatus
from jobq.storage.redis import RedisStorage
from tests.helpers import ROOT, free_port, started_process, wait_for

pytestmark = pytest.mark.redis

CHILD = ROOT / "tests" / "integration" / "_redis_child.py"
NO_SERVER = "redis-server is not installed (Debian: apt install redis-server)"


def _answers(port: int) -> bool:
    """Whether the server answers PING with PONG (not LOADING, while it reads its file)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class OwnServer:
    """A redis-server that keeps every accepted write (``appendfsync always``) in
    ``folder``; :meth:`kill` SIGKILLs it, :meth:`start` starts it again on the same
    folder and port."""

    def __init__(self, folder: Path) -> None:
        program = shutil.which("redis-server")
        if program is None:
            if os.environ.get("JOBQ_REQUIRE_REDIS") == "1":
                pytest.fail(NO_SERVER)
            pytest.skip(NO_SERVER)
        self.program = program
        self.folder = folder
        folder.mkdir()
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        options = ["--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder)]
        options += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        options += ["--daemonize", "no", "--logfile", "redis.log"]
        self.process = subprocess.Popen(
            [self.program, *options],
            cwd=self.folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.starts += 1
        process = self.process
        wait_for(lambda: process.poll() is not None or _answers(self.port), "redis-server up")
        assert process.poll() is None, (self.folder / "redis.log").read_text()

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30.0)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.kill()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[OwnServer]:
    own = OwnServer(tmp_path / "redis")
    own.start()
    try:
        yield own
    finally:
        own.stop()


def _accepted(folder: Path) -> dict[int, int]:
    """Job number -> the id its enqueue returned."""
    path = folder / "enqueued.txt"
    if not path.exists():
        return {}
    lines = [line.split() for line in path.read_text().split("\n")[:-1]]
    return {int(parts[1]): int(parts[2]) for parts in lines if parts[0] == "ok"}


def _ledger(folder: Path) -> list[tuple[str, int, int, int, float]]:
    """(event, job id, pid, attempt, time) of every run the workers wrote, by time."""
    entries = []
    for path in folder.glob("ledger-*.txt"):
        for line in path.read_text().split("\n")[:-1]:
            event, job_id, pid, attempt, when = line.split()
            entries.append((event, int(job_id), int(pid), int(attempt), float(when)))
    return sorted(entries, key=lambda entry: entry[4])


def _done(folder: Path) -> int:
    """How many jobs a worker has run to the end (once or more)."""
    return len({job_id for event, job_id, *_ in _ledger(folder) if event == "done"})


def _running(folder: Path, dead: Container[int]) -> int:
    """How many runs have started and not ended, in processes not ``dead``."""
    runs = Counter((job_id, pid, attempt) for _, job_id, pid, attempt, _ in _ledger(folder))
    return sum(1 for (_, pid, _), n in runs.items() if n == 1 and pid not in dead)


def _child(mode: str, tmp_path: Path, server: OwnServer, **config: Any) -> list[str]:
    settings = {"mode": mode, "url": server.url, "prefix": "jobq-kill:", "dir": str(tmp_path)}
    return [sys.executable, str(CHILD), json.dumps({**settings, **config})]


@pytest.mark.slow
def test_no_accepted_job_is_lost_across_sigkill_and_restart_of_the_server(
    tmp_path: Path, server: OwnServer
) -> None:
    jobs = 1000
    rng = random.Random(20)
    kills: list[dict[str, Any]] = []
    outages: list[tuple[float, float]] = []  # (killed, answering again)
    dead_workers: dict[int, float] = {}  # pid -> when it was SIGKILLed
    workers: list[subprocess.Popen[bytes]] = []

    with contextlib.ExitStack() as stack:

        def start_worker() -> None:
            args = _child("workers", tmp_path, server, concurrency=4, job_sleep=0.03)
            log = tmp_path / f"workers-{len(workers) + len(dead_workers)}.log"
            workers.append(stack.enter_context(started_process(args, log=log)))

        def kill_and_restart() -> None:
            kills.append(
                {
                    "accepted": len(_accepted(tmp_path)),
                    "done": _done(tmp_path),
                    "running": _running(tmp_path, dead_workers),
                }
            )
            if len(kills) % 2 == 0:  # and a worker process with it, replaced at once
                victim = workers.pop(rng.randrange(len(workers)))
                dead_workers[victim.pid] = time.time()
                os.killpg(victim.pid, signal.SIGKILL)
                victim.wait(timeout=30.0)
                start_worker()
            down = time.time()
            server.kill()
            time.sleep(rng.uniform(0.0, 0.3))  # the outage's length, not a wait for anything
            server.start()
            outages.append((down, time.time()))

        for _ in range(2):
            start_worker()
        wait_for(lambda: len(list(tmp_path.glob("ready-*"))) == 2, "workers ready")
        enqueuer = stack.enter_context(
            started_process(
                _child("enqueue", tmp_path, server, count=jobs), log=tmp_path / "enqueue.log"
            )
        )
        # Three kills while jobs are enqueued (and run), at random points...
        for mark in sorted(rng.uniform(0.1, 0.8) * jobs for _ in range(3)):
            wait_for(
                lambda mark=mark: len(_accepted(tmp_path)) >= mark or enqueuer.poll() is not None,
                "jobs enqueued",
            )
            kill_and_restart()
        assert enqueuer.wait(timeout=60.0) == 0, (tmp_path / "enqueue.log").read_text()
        # ... and two while the rest are processed.
        for share in (0.0, 0.5):
            done = _done(tmp_path)
            wait_for(
                lambda done=done, share=share: _done(tmp_path) >= done + share * (jobs - done),
                "jobs processed",
            )
            kill_and_restart()

        storage = RedisStorage(server.url, prefix="jobq-kill:", durability="refuse")
        stack.callback(storage.close)

        def stored() -> list[Any]:
            found = []
            after = 0
            while True:
                page = storage.list_jobs(after_id=after, limit=1000)
                found += page
                if len(page) < 1000:
                    return found
                after = page[-1].id

        wait_for(
            lambda: all(job.status is JobStatus.COMPLETED for job in stored()),
            "every job completed",
            timeout=60.0,
            interval=0.1,
        )
        jobs_now = {job.id: job for job in stored()}
        (tmp_path / "stop").touch()
        for worker in workers:
            assert worker.wait(timeout=30.0) == 0, f"worker {worker.pid} did not stop cleanly"

    accepted = _accepted(tmp_path)
    assert sorted(accepted) == list(range(jobs))  # the enqueuer got an id for every job
    lost = sorted(set(accepted.values()) - set(jobs_now))
    # An enqueue whose answer was lost with the server (it raised, or redis-py sent
    # it again after reconnecting) may have been applied all the same: an extra job
    # with the same number, which ran too. Enqueue is at least once, not exactly once.
    numbers = Counter(job.decoded_result() for job in jobs_now.values())
    extra = sum(numbers.values()) - len(numbers)
    assert sorted(numbers) == list(range(jobs))
    runs: dict[int, list[tuple[int, int, float]]] = {}  # job id -> (attempt, pid, start)
    for event, job_id, pid, attempt, when in _ledger(tmp_path):
        if event == "start":
            runs.setdefault(job_id, []).append((attempt, pid, when))
    duplicates = {job_id: len(r) for job_id, r in runs.items() if len(r) > 1}
    enqueue_lines = [line.split() for line in (tmp_path / "enqueued.txt").read_text().split("\n")]
    raised = {int(parts[1]) for parts in enqueue_lines if parts and parts[0] == "error"}
    silent = sum(n - 1 for number, n in numbers.items() if n > 1 and number not in raised)
    worker_errors = sum(
        len(path.read_text().split("\n")) - 1 for path in tmp_path.glob("errors-*.txt")
    )
    print(
        f"\nredis-server SIGKILLed {len(kills)} times {kills}, worker processes "
        f"{len(dead_workers)} times: {jobs} jobs accepted, "
        f"lost {len(lost)}, extra {extra} (of which {silent} after an enqueue that did not "
        f"raise), run more than once {len(duplicates)}, enqueues that raised "
        f"{len(raised)}, errors the workers logged {worker_errors}"
    )
    assert lost == [], f"accepted jobs missing after the restarts: {lost[:20]}"
    assert {job.status for job in jobs_now.values()} == {JobStatus.COMPLETED}
    assert set(runs) == set(jobs_now), "a job completed without a run, or ran unknown"
    for job_id in duplicates:
        # A job ran again only when its worker process was killed, or the server was
        # down while it ran: its worker could not renew the lease (or record the end),
        # the lease lapsed and a rescue sweep gave the job to the next claim, as
        # another attempt.
        job, attempts = jobs_now[job_id], [attempt for attempt, _, _ in runs[job_id]]
        assert attempts == sorted(set(attempts)), runs[job_id]
        assert job.attempts >= attempts[-1], runs[job_id]
        assert job.error is not None
        assert job.error.type in ("LeaseExpired", "WorkerDied")
        for (_, pid, began), (_, _, again) in itertools.pairwise(runs[job_id]):
            killed = began < dead_workers.get(pid, -1.0) < again
            outage = any(began < up and down < again for down, up in outages)
            assert killed or outage, (runs[job_id], outages, dead_workers)
    # The kills came while jobs were being enqueued, and while jobs were running.
    assert any(0 < kill["accepted"] < jobs for kill in kills), kills
    assert any(kill["running"] > 0 for kill in kills), kills
    assert server.starts == len(kills) + 1
    assert len(dead_workers) == 2
