"""Real processes: workers after fork() (gunicorn --preload's case) and on SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, eventually, wait_for

SCRIPT = Path(__file__).with_name("_app_process.py")


def _start(mode: str, folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), mode, str(folder)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_its_own_workers(tmp_path: Path) -> None:
    process = _start("fork", tmp_path)
    _out, err = process.communicate(timeout=90)
    assert process.returncode == 0, err
    result = json.loads((tmp_path / "fork-result.json").read_text())
    assert result["parent_job_pid"] == process.pid
    assert result["inherited_pool_seen"] is False  # the parent's threads did not come along
    assert result["child_pool_alive"] is True
    assert result["child_pool_is_parents"] is False
    assert result["child_job_pid"] == result["child_pid"] != process.pid


def test_sigterm_lets_the_running_job_finish_then_dies_of_sigterm(tmp_path: Path) -> None:
    process = _start("sigterm", tmp_path)
    try:
        # The job may start (and touch "started") before the child names it.
        eventually(
            lambda: (
                ((tmp_path / "started").exists() and any(tmp_path.glob("job-*")))
                or process.poll() is not None
            ),
            timeout=60,
        )
        assert process.poll() is None, process.communicate()[1]
        [marker] = tmp_path.glob("job-*")
        job_id = int(marker.name.split("-")[1])
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == -signal.SIGTERM, err
    assert time.monotonic() - began < 30
    with sqlite3.connect(tmp_path / "jobq.db") as db:
        status, result = db.execute(
            "SELECT status, result FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
    assert (status, json.loads(result)) == ("completed", "finished"), err


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


def _post(port: int, path: str) -> dict[str, int]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST")
    with _DIRECT.open(request, timeout=10) as response:
        body: dict[str, int] = json.loads(response.read())
        return body


def test_preloaded_app_in_forked_http_servers_runs_each_job_once(tmp_path: Path) -> None:
    process = _start("prefork", tmp_path)
    jobs = 40
    try:
        eventually(lambda: (tmp_path / "port").exists() or process.poll() is not None, timeout=60)
        assert process.poll() is None, process.communicate()[1]
        port = int((tmp_path / "port").read_text())
        answers = [_post(port, "/record") for _ in range(jobs)]
        ledger = tmp_path / "ledger.txt"
        eventually(lambda: ledger.exists() and len(ledger.read_text().split()) >= jobs, timeout=30)
        (tmp_path / "stop").touch()
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err  # both children died of SIGTERM, as asked
    children = set(json.loads(out)["children"])
    served_by = {answer["pid"] for answer in answers}
    assert served_by <= children
    runners = [int(pid) for pid in (tmp_path / "ledger.txt").read_text().split()]
    assert len(runners) == jobs  # each job ran exactly once
    assert set(runners) <= children  # in the forked servers, never in the "master"
    with sqlite3.connect(tmp_path / "jobq.db") as db:
        rows = db.execute("SELECT status, attempts FROM jobs").fetchall()
    assert rows == [("completed", 1)] * jobs


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_flask_run_debug_starts_workers_only_in_the_reloader_child(tmp_path: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "tests.integration.flask._app_process:reloader_app()",
            "run",
            "--debug",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "JOBQ_TEST_DIR": str(tmp_path)},
        start_new_session=True,
    )
    started = tmp_path / "worker-started.txt"
    try:
        eventually(lambda: started.exists() or process.poll() is not None, timeout=60)
        assert process.poll() is None, process.communicate()[1]
        answer: dict[str, Any] | None = None

        def answered() -> bool:
            nonlocal answer
            with contextlib.suppress(OSError):
                answer = _post(port, "/whoami")
            return answer is not None

        wait_for(answered, "flask run answered", 30, interval=0.05)
        assert answer is not None
        [child] = {int(pid) for pid in started.read_text().split()}
        assert child != process.pid  # the reloader's parent never started workers
        db = sqlite3.connect(tmp_path / "jobq.db")
        with contextlib.closing(db):
            eventually(
                lambda: (
                    db.execute("SELECT status FROM jobs WHERE id = ?", (answer["id"],)).fetchone()
                    == ("completed",)
                )
            )
            [result] = db.execute(
                "SELECT result FROM jobs WHERE id = ?", (answer["id"],)
            ).fetchone()
        assert json.loads(result) == child  # run by the child's workers, already started
        assert started.read_text().split() == [str(child)]  # once, in the child only
        os.kill(child, signal.SIGTERM)  # the reloader's parent then exits with the child
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
