"""A real gunicorn (``--workers 4``, with and without ``--preload``) serving
tests/integration/flask/_gunicorn_app.py on 127.0.0.1: jobs enqueued over HTTP in every
worker process run exactly once, in the workers and never in the master; each
signal fires once per event; ``/jobq/stats`` matches ``queue.stats()``; SIGTERM
to the master right after a burst of slower jobs ends everything within a bound
and leaves no job ``processing`` (those that ran completed, the rest pending).
Both database drivers; each case takes a few seconds.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import jobq
from jobq.job import JobStatus
from tests.helpers import ROOT, gunicorn_port, wait_for

APP = "tests.integration.flask._gunicorn_app:create_app()"
WORKERS = 4
JOBS = 200  # first batch; more are sent if some worker process has served none yet
MAX_JOBS = 600
LATE_JOBS = 80  # sent just before SIGTERM, each sleeping LATE_JOB_SECONDS
LATE_JOB_SECONDS = 0.05
CLIENT_THREADS = 8
BOOT_LIMIT = 30.0
RUN_LIMIT = 30.0
EXIT_LIMIT = 20.0
GRACEFUL_TIMEOUT = 5

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


def _call(port: int, method: str, path: str) -> dict[str, Any]:
    # urllib sends "Connection: close": each request is a new connection, which any
    # worker process may accept.
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        response = _DIRECT.open(request, timeout=10)
    except urllib.error.HTTPError as error:
        with error:  # closed, or it would leak its socket
            raise AssertionError(f"{method} {path}: {error.code} {error.read()!r}") from None
    with response:
        assert response.status == 200
        body: dict[str, Any] = json.loads(response.read())
        return body


@contextlib.contextmanager
def _gunicorn(
    tmp_path: Path, preload: bool, driver: str
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """Start gunicorn; yield it and its log file. On the way out (failure included),
    whatever still runs in its process group is killed."""
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    log = tmp_path / "gunicorn.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(WORKERS),
        "--worker-class",
        "sync",
        "--bind",
        "127.0.0.1:0",
        "--graceful-timeout",
        str(GRACEFUL_TIMEOUT),
        "--timeout",
        "60",
        "--worker-tmp-dir",
        str(tmp_path),
        "--no-control-socket",
        "--log-level",
        "info",
    ]
    if preload:
        command.append("--preload")
    env = {
        **os.environ,
        "JOBQ_GUNICORN_DB": str(tmp_path / "jobq.db"),
        "JOBQ_GUNICORN_LEDGER": str(ledger),
        "JOBQ_GUNICORN_DRIVER": driver,
    }
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [*command, APP],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process, log
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # orphaned workers, if any
            os.killpg(process.pid, signal.SIGKILL)


def _parent(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^PPid:\s+(\d+)$", status, re.MULTILINE)
    return int(match.group(1)) if match else None


def _lines(folder: Path, kind: str) -> list[list[str]]:
    return [
        line.split()
        for path in sorted(folder.glob(f"{kind}-*.txt"))
        for line in path.read_text().splitlines()
    ]


def _expected_stats(stats: Any) -> dict[str, Any]:
    """``queue.stats()`` as the monitor should show it (built here, not with views.py)."""
    queues = {
        name: {
            "counts": {status.value: s.counts.get(status, 0) for status in JobStatus},
            "scheduled": s.scheduled,
            "waiting": s.waiting,
            "oldest_runnable_age": s.oldest_runnable_age,
            "paused": name in stats.paused,
        }
        for name, s in stats.queues.items()
    }
    totals = {
        status.value: sum(q["counts"][status.value] for q in queues.values())
        for status in JobStatus
    }
    return {
        "queues": queues,
        "totals": totals,
        "completed_last_minute": stats.completed_last_minute,
        "failed_last_minute": stats.failed_last_minute,
        "paused": sorted(stats.paused),
    }


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, needs fork")
@pytest.mark.parametrize("preload", [False, True], ids=["fork-then-load", "preload"])
@pytest.mark.parametrize(
    "driver",
    [
        "sqlite3",
        pytest.param(
            "apsw",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("apsw") is None, reason="needs jobq[apsw]"
            ),
        ),
    ],
)
def test_gunicorn_workers_run_each_http_job_exactly_once(
    tmp_path: Path, preload: bool, driver: str
) -> None:
    began = time.monotonic()
    with _gunicorn(tmp_path, preload, driver) as (process, log):
        master = process.pid
        port = gunicorn_port(process, log, BOOT_LIMIT)
        ledger = tmp_path / "ledger"

        # Enqueue over HTTP from several client threads until every worker served.
        answers: list[dict[str, Any]] = []
        with ThreadPoolExecutor(CLIENT_THREADS) as clients:
            while True:
                answers += clients.map(lambda _: _call(port, "POST", "/enqueue"), range(JOBS))
                served_by = {answer["pid"] for answer in answers}
                if len(served_by) == WORKERS or len(answers) >= MAX_JOBS:
                    break
        ids = [answer["id"] for answer in answers]
        jobs = len(ids)
        assert len(set(ids)) == jobs
        assert master not in served_by
        assert len(served_by) == WORKERS, f"{jobs} requests reached only {served_by}"
        assert {_parent(pid) for pid in served_by} == {master}  # gunicorn's workers

        # The monitor (served by any worker) until everything has completed.
        def all_completed() -> bool:
            assert process.poll() is None, log.read_text()
            totals = _call(port, "GET", "/jobq/stats")["totals"]
            return bool(totals["completed"] == jobs)

        wait_for(all_completed, f"{jobs} jobs completed", RUN_LIMIT)
        monitor = _call(port, "GET", "/jobq/stats")
        queue = jobq.DurableQueue(tmp_path / "jobq.db", driver=driver)  # type: ignore[arg-type]
        with contextlib.closing(queue):
            direct = queue.stats()
        assert monitor == _expected_stats(direct)
        assert monitor["totals"] == {
            status.value: jobs if status is JobStatus.COMPLETED else 0 for status in JobStatus
        }
        assert monitor["completed_last_minute"] == jobs

        # Then a burst of slower jobs and, at once, SIGTERM to the master: the
        # workers stop their pools (running jobs finish, unstarted ones go back
        # to pending) and exit, then the master.
        with ThreadPoolExecutor(CLIENT_THREADS) as clients:
            late = list(
                clients.map(
                    lambda _: _call(port, "POST", f"/enqueue?seconds={LATE_JOB_SECONDS}"),
                    range(LATE_JOBS),
                )
            )
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=EXIT_LIMIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"gunicorn still running {EXIT_LIMIT} s after SIGTERM:\n{log.read_text()}")
        stopped_in = time.monotonic() - stopping
        output = log.read_text()
        assert process.returncode == 0, output
        wait_for(
            lambda: all(_parent(pid) is None for pid in served_by), "the workers gone", 5
        )  # not orphaned: the master reaped them

    late_ids = [answer["id"] for answer in late]
    assert set(late_ids).isdisjoint(ids)
    assert {answer["pid"] for answer in late} <= served_by
    answers += late

    # The database: nothing left processing. The first jobs all completed, once;
    # of the burst, those that ran completed, the others are pending again.
    with contextlib.closing(sqlite3.connect(tmp_path / "jobq.db")) as db:
        status = {
            job_id: (state, attempts)
            for job_id, state, attempts in db.execute("SELECT id, status, attempts FROM jobs")
        }
    assert sorted(status) == sorted(ids + late_ids)
    assert {job_id: status[job_id] for job_id in ids} == dict.fromkeys(ids, ("completed", 1))
    assert {state for state, _ in status.values()} <= {"pending", "completed"}, output
    # a job handed back unstarted has not used an attempt
    assert all(attempts == 0 for state, attempts in status.values() if state == "pending")

    # Where the app was built: once in the master with --preload, else once per worker.
    created = [int(pid) for [pid] in _lines(ledger, "created")]
    if preload:
        assert created == [master]
    else:
        assert master not in created
        assert len(created) == len(set(created))
        assert served_by <= set(created)

    # The job ledger: every completed job ran exactly once, pending ones never, in
    # workers, not only one of them.
    ran = _lines(ledger, "jobs")
    runs = Counter(int(job_id) for job_id, _ in ran)
    completed = [job_id for job_id, (state, _) in status.items() if state == "completed"]
    assert sorted(runs) == sorted(completed)
    assert set(runs.values()) == {1}
    assert all(status[job_id] == ("completed", 1) for job_id in runs)
    runner = {int(job_id): int(pid) for job_id, pid in ran}
    assert master not in runner.values()
    assert set(runner.values()) <= served_by  # only processes that served start pools
    assert len(set(runner.values())) > 1

    # Signals: once per event, in the process where the event happened.
    received = _lines(ledger, "signals")
    by_kind = Counter(kind for kind, _, _ in received)
    assert set(by_kind) <= {
        "job-enqueued",
        "job-started",
        "job-succeeded",
        "worker-started",
        "worker-stopped",
    }, by_kind
    served = {answer["id"]: answer["pid"] for answer in answers}
    for kind, where in (
        ("job-enqueued", served),
        ("job-started", runner),
        ("job-succeeded", runner),
    ):
        events = [(int(job_id), int(pid)) for k, job_id, pid in received if k == kind]
        assert sorted(events) == sorted(where.items()), kind
    for kind in ("worker-started", "worker-stopped"):
        pids = [int(pid) for k, _, pid in received if k == kind]
        assert sorted(pids) == sorted(served_by), kind  # one pool per worker, none in master

    elapsed = time.monotonic() - began
    print(
        f"{driver}, preload={preload}: {jobs}+{LATE_JOBS} jobs over {len(served_by)} workers, "
        f"run by {len(set(runner.values()))}; {len(late_ids) - (len(completed) - jobs)} left "
        f"pending; stopped in {stopped_in:.1f} s; {elapsed:.1f} s in all"
    )
