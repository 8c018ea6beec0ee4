"""``jobq worker --health-port``: a real worker process, started in a project folder as
a user starts it, probed over HTTP as a load balancer or Kubernetes would.

The port is 0 (a free one); the test reads the URL the worker logs at start.
The long job waits for a file the test writes, so "still running" is a fact the
test controls, never a guess about time.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import textwrap
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from subprocess import Popen
from typing import Any

import pytest

from jobq import DurableQueue, JobStatus
from jobq.cli.health import HealthServer
from jobq.errors import CommandError
from tests.helpers import started_process, wait_for

DEADLINE = 30.0  # real seconds any one step may take on a busy machine

TASKS = """
import time
from pathlib import Path

import jobq

queue = jobq.DurableQueue("instance/jobs.db")


@queue.task("gated")
def gated() -> None:
    Path("started").touch()
    deadline = time.monotonic() + 60  # the test opens the gate long before
    while not Path("gate").exists() and time.monotonic() < deadline:
        time.sleep(0.01)


@queue.task("report", queue="reports")
def report() -> None: ...
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, str, DurableQueue]]:
    """A project folder with ``<package>/tasks.py`` and the queue a web app would hold on
    the same database: ``(folder, package, queue)``."""
    package = f"healthapp_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "tasks.py").write_text(textwrap.dedent(TASKS))
    queue = DurableQueue(tmp_path / "instance" / "jobs.db")
    queue.task("gated")(lambda: None)  # to enqueue them here, as the web app would
    queue.task("report", queue="reports")(lambda: None)
    try:
        yield tmp_path, package, queue
    finally:
        queue.close()


@contextmanager
def worker(folder: Path, package: str, *options: str) -> Iterator[tuple[Popen[bytes], Path]]:
    """``jobq worker --app <package>.tasks:queue --health-port 0 ...`` in ``folder``."""
    jobq_script = Path(sys.executable).with_name("jobq")
    args = [str(jobq_script), "worker", "--app", f"{package}.tasks:queue", "--grace", "30"]
    log = folder / "worker.log"
    with started_process([*args, "--health-port", "0", *options], log=log, cwd=folder) as child:
        yield child, log


def health_url(child: Popen[bytes], log: Path) -> str:
    """The URL the worker logged at start (once its pool runs)."""
    marker = "health check on "

    def logged() -> bool:
        assert child.poll() is None, log.read_text()
        return marker in log.read_text()

    wait_for(logged, "the worker logged its health check's URL", DEADLINE, interval=0.02)
    line = next(line for line in log.read_text().splitlines() if marker in line)
    return line.split(marker, 1)[1].strip()


def probe(url: str, *, method: str = "GET") -> tuple[int, dict[str, Any]]:
    """(status code, JSON body) of one request, whatever the code."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_ok_while_running_then_stopping_from_sigterm_until_the_process_exits(
    project: tuple[Path, str, DurableQueue],
) -> None:
    folder, package, queue = project
    with worker(folder, package, "--concurrency", "1") as (child, log):
        url = health_url(child, log)
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/health")
        assert probe(url) == (200, {"status": "ok", "problems": []})
        assert probe(url.removesuffix("health")) == (200, {"status": "ok", "problems": []})
        job = queue.enqueue("gated")
        wait_for(lambda: (folder / "started").exists(), "the long job started", DEADLINE)

        child.send_signal(signal.SIGTERM)
        stopping = (
            503,
            {
                "status": "stopping",
                "problems": ["the process is stopping: running jobs are finishing"],
            },
        )
        wait_for(lambda: probe(url) == stopping, "the check answered stopping", DEADLINE)
        # The job cannot end before the gate opens: the drain is still going on.
        assert child.poll() is None
        assert queue.get(job.id).status is JobStatus.PROCESSING
        assert probe(url) == stopping

        (folder / "gate").touch()
        assert child.wait(DEADLINE) == 0, log.read_text()
    assert queue.get(job.id).status is JobStatus.COMPLETED
    with pytest.raises(urllib.error.URLError):
        probe(url)  # the port is free again: nothing answers
    output = log.read_text()
    assert "Traceback" not in output
    assert "/health" not in output.replace(f"health check on {url}", "")  # no probe logged


def test_max_age_unhealthy_while_a_job_waits_in_a_queue_no_worker_serves(
    project: tuple[Path, str, DurableQueue],
) -> None:
    folder, package, queue = project
    queue.enqueue("report")  # queue "reports"; the worker below takes "default" only
    with worker(folder, package, "--queues", "default") as (child, log):
        url = health_url(child, log)
        code, body = probe(url + "?max_age=0")
        assert (code, body["status"]) == (503, "unavailable")
        assert body["problems"][0].startswith("a job has been runnable for ")
        assert body["problems"][0].endswith(" s, more than max_age 0 s")
        assert probe(url + "?max_age=3600") == (200, {"status": "ok", "problems": []})
        assert probe(url + "?max_age=soon") == (
            400,
            {
                "status": "bad request",
                "problems": ["max_age must be a number of seconds, got 'soon'"],
            },
        )
        assert probe(url.replace("/health", "/jobs"))[0] == 404
        assert probe(url, method="POST") == (
            405,
            {"status": "method not allowed", "problems": ["use GET"]},
        )
        child.send_signal(signal.SIGTERM)
        assert child.wait(DEADLINE) == 0, log.read_text()


def test_a_port_in_use_stops_the_command_at_start_with_exit_code_2(
    project: tuple[Path, str, DurableQueue],
) -> None:
    folder, package, queue = project
    job = queue.enqueue("gated")
    jobq_script = Path(sys.executable).with_name("jobq")
    log = folder / "worker.log"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        args = [str(jobq_script), "worker", "--app", f"{package}.tasks", "--health-port", str(port)]
        with started_process(args, log=log, cwd=folder) as child:
            assert child.wait(DEADLINE) == 2, log.read_text()
    assert log.read_text() == (
        f"jobq: error: cannot serve the health check on 127.0.0.1:{port}: the port is in use "
        "by another process; choose another --health-port\n"
    )
    assert queue.get(job.id).status is JobStatus.PENDING  # no job was claimed
    assert not (folder / "started").exists()


def test_the_server_answers_head_and_frees_its_port_on_close(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "jobs.db")
    try:
        server = HealthServer(
            "127.0.0.1", 0, queue=queue, pool=lambda: None, stopping=lambda: False
        )
        server.start()
        try:
            request = urllib.request.Request(server.url, method="HEAD")
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(request, timeout=DEADLINE)
            assert caught.value.code == 503  # no pool: this process runs no workers
            assert caught.value.read() == b""
        finally:
            server.close()
        again = HealthServer(
            "127.0.0.1", server.port, queue=queue, pool=lambda: None, stopping=bool
        )
        again.close()
    finally:
        queue.close()


@pytest.mark.parametrize("port", [-1, 65536])
def test_a_port_out_of_range_is_refused(tmp_path: Path, port: int) -> None:
    queue = DurableQueue(tmp_path / "jobs.db")
    try:
        with pytest.raises(
            CommandError, match=f"--health-port must be between 0 and 65535, got {port}"
        ):
            HealthServer("127.0.0.1", port, queue=queue, pool=lambda: None, stopping=lambda: False)
    finally:
        queue.close()
