"""``flask jobq worker --health-port``: the separate worker of a Flask app answers the
same health check as ``jobq worker`` (a real process, probed over HTTP)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from jobq import DurableQueue
from tests.helpers import started_process, wait_for

DEADLINE = 30.0  # real seconds any one step may take on a busy machine

APP = """
from flask import Flask

from flask_jobq import JobQ

jobq_ext = JobQ()


@jobq_ext.task("record")
def record() -> None: ...


app = Flask("healthapp")
app.config.update(JOBQ_DATABASE="jobs.db", JOBQ_START_WORKERS=False, JOBQ_CONCURRENCY=1)
jobq_ext.init_app(app)
"""


def flask_worker_args(folder: Path, *options: str) -> list[str]:
    (folder / "healthapp.py").write_text(textwrap.dedent(APP))
    app = str(folder / "healthapp.py")
    return [sys.executable, "-m", "flask", "--app", app, "jobq", "worker", *options]


def health_url(child: subprocess.Popen[bytes], log: Path) -> str:
    """The URL of the health check the worker ``child`` logged once it listens."""

    def logged() -> bool:
        assert child.poll() is None, log.read_text()
        return "health check on " in log.read_text()

    wait_for(logged, "the worker logged its health check's URL", DEADLINE, interval=0.02)
    return log.read_text().split("health check on ", 1)[1].split()[0]


def test_flask_worker_serves_the_health_check_until_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    args = flask_worker_args(tmp_path, "--health-port", "0")
    with started_process(args, log=log, cwd=tmp_path, env=os.environ) as child:
        url = health_url(child, log)
        with urllib.request.urlopen(url, timeout=DEADLINE) as response:
            assert (response.status, json.loads(response.read())) == (
                200,
                {"status": "ok", "problems": []},
            )
        child.send_signal(signal.SIGTERM)
        assert child.wait(DEADLINE) == 0, log.read_text()
    assert "Traceback" not in log.read_text()


def test_flask_worker_refuses_a_port_in_use_with_exit_code_2(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        args = flask_worker_args(tmp_path, "--health-port", str(port))
        with started_process(args, log=log, cwd=tmp_path, env=os.environ) as child:
            assert child.wait(DEADLINE) == 2, log.read_text()
    assert log.read_text() == (
        f"Error: cannot serve the health check on 127.0.0.1:{port}: the port is in use by "
        "another process; choose another --health-port\n"
    )


@pytest.mark.parametrize("counted_by_the_app", [False, True])
def test_flask_worker_serves_a_scrape_counting_each_job_once(
    tmp_path: Path, counted_by_the_app: bool
) -> None:
    pytest.importorskip("prometheus_client")
    log = tmp_path / "worker.log"
    args = flask_worker_args(tmp_path, "--health-port", "0", "--metrics")
    if counted_by_the_app:  # JOBQ_METRICS connects the app's counters already
        with (tmp_path / "healthapp.py").open("a") as app_file:
            app_file.write("app.config['JOBQ_METRICS'] = True\n")
    queue = DurableQueue(tmp_path / "instance" / "jobs.db")  # the app's JOBQ_DATABASE
    queue.task("record")(lambda: None)  # the app's task, for enqueueing by name
    try:
        with started_process(args, log=log, cwd=tmp_path, env=os.environ) as child:
            url = health_url(child, log).removesuffix("/health") + "/metrics"
            for _ in range(3):
                queue.enqueue("record")

            def completed() -> float | None:
                with urllib.request.urlopen(url, timeout=DEADLINE) as response:
                    text = response.read().decode()
                for line in text.splitlines():
                    if line.startswith('jobq_jobs_completed_total{queue="default",task="record"}'):
                        return float(line.rsplit(" ", 1)[1])
                return None

            wait_for(lambda: completed() == 3, "3 jobs counted", DEADLINE, interval=0.05)
            child.send_signal(signal.SIGTERM)
            assert child.wait(DEADLINE) == 0, log.read_text()
    finally:
        queue.close()
