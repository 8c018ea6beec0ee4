"""Workers start when a serving process starts, before any request, and only there.

Real servers run tests/integration/flask/_served_app.py on 127.0.0.1 and receive no
request at all: the test enqueues straight into the database and reads which
processes started pools and ran jobs from the app's ledger. Commands that do not
serve are run to completion, then the ledger shows they started nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobq
from tests.helpers import ROOT, wait_for

APP = "tests.integration.flask._served_app"
LIMIT = 30.0

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="real servers, fork and /proc"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _pids(folder: Path, kind: str) -> list[int]:
    """The pid of each line of the ``kind`` ledger files, in no particular order."""
    return [
        int(path.name.removeprefix(f"{kind}-").removesuffix(".txt"))
        for path in folder.glob(f"{kind}-*.txt")
        for _ in path.read_text().splitlines()
    ]


def _runner(folder: Path, job_id: int) -> int | None:
    for path in folder.glob("jobs-*.txt"):
        for line in path.read_text().splitlines():
            ran, pid = line.split()
            if int(ran) == job_id:
                return int(pid)
    return None


def _enqueue(folder: Path) -> int:
    """Store a ``record`` job as another process would (this one runs no worker)."""
    queue = jobq.DurableQueue(folder / "jobq.db")
    with contextlib.closing(queue):
        queue.task("record")(lambda: None)
        return queue.enqueue("record").id


def _ran_by(folder: Path, process: subprocess.Popen[bytes], log: Path) -> int:
    job_id = _enqueue(folder)
    found: list[int] = []

    def ran() -> bool:
        assert process.poll() is None, log.read_text()
        pid = _runner(folder, job_id)
        if pid is not None:
            found.append(pid)
        return bool(found)

    wait_for(ran, f"job {job_id} ran", LIMIT)
    return found[0]


@contextlib.contextmanager
def _served(folder: Path, command: list[str]) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log = folder / "server.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "JOBQ_SERVED_DIR": str(folder)},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process, log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _started(folder: Path, count: int, process: subprocess.Popen[bytes], log: Path) -> set[int]:
    def enough() -> bool:
        assert process.poll() is None, log.read_text()
        return len(set(_pids(folder, "started"))) >= count

    wait_for(enough, f"{count} pools started", LIMIT)
    return set(_pids(folder, "started"))


def _gunicorn_workers(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
def test_idle_gunicorn_workers_run_jobs_and_schedules_and_so_do_their_replacements(
    tmp_path: Path, preload: bool
) -> None:
    command = [sys.executable, "-m", "gunicorn", "-w", "2", "--bind", "127.0.0.1:0"]
    command += ["--worker-tmp-dir", str(tmp_path), "--graceful-timeout", "5"]
    command += [*(["--preload"] if preload else []), f"{APP}:create_app()"]
    with _served(tmp_path, command) as (process, log):
        master = process.pid
        first = _started(tmp_path, 2, process, log)
        assert master not in first  # never in the master, --preload or not
        assert first == _gunicorn_workers(master)
        assert _ran_by(tmp_path, process, log) in first
        wait_for(lambda: bool(re.search(r"^\d+ ", _ledger(tmp_path))), "the schedule fired")

        for pid in first:  # gunicorn replaces both; no request ever reaches them
            os.kill(pid, signal.SIGKILL)
        replacements = _started(tmp_path, 4, process, log) - first
        assert len(replacements) == 2
        assert master not in replacements
        assert _ran_by(tmp_path, process, log) in replacements

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=LIMIT) == 0, log.read_text()
    assert sorted(_pids(tmp_path, "started")) == sorted(first | replacements)  # once each


def _ledger(folder: Path) -> str:
    return "".join(path.read_text() for path in folder.glob("jobs-*.txt"))


@pytest.mark.parametrize(
    "how", ["flask run", "flask run --debug", "python app.py", "python app.py debug"]
)
def test_development_servers_start_workers_in_the_serving_process_only(
    tmp_path: Path, how: str
) -> None:
    port = str(_free_port())
    if how.startswith("flask"):
        command = [sys.executable, "-m", "flask", "--app", f"{APP}:create_app()", "run"]
        command += ["--port", port, *how.split()[2:]]
    else:
        command = [sys.executable, "-m", APP, port, *how.split()[2:]]
    with _served(tmp_path, command) as (process, log):
        [serving] = _started(tmp_path, 1, process, log)
        if "debug" in how:
            assert serving != process.pid  # the reloader's child, not its watching parent
        else:
            assert serving == process.pid
        assert _ran_by(tmp_path, process, log) == serving
        assert _pids(tmp_path, "started") == [serving]  # one pool, in one process


@pytest.mark.parametrize(
    "arguments", [["shell"], ["routes"], ["jobq", "stats"], ["jobq", "schedules"]], ids=" ".join
)
def test_other_flask_commands_start_no_workers(tmp_path: Path, arguments: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", f"{APP}:create_app()", *arguments],
        cwd=ROOT,
        env={**os.environ, "JOBQ_SERVED_DIR": str(tmp_path)},
        input="print(app.extensions['jobq'].queue.schedules()[0].name)\n",  # for the shell
        capture_output=True,
        text=True,
        timeout=LIMIT,
    )
    assert done.returncode == 0, done.stderr
    assert _pids(tmp_path, "started") == []  # the command ran to its end without a pool
    assert _ledger(tmp_path) == ""
    if arguments[0] == "shell" or arguments[1:] == ["schedules"]:
        assert "tick" in done.stdout  # JOBQ_SCHEDULES is stored without any worker
