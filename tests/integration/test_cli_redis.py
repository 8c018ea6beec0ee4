"""The plain ``jobq`` command line on a Redis server: ``--db redis://...`` (and
``$JOBQ_DATABASE``) works for every verb as a SQLite file does, and a real
``jobq worker`` process runs the jobs."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobq import DurableQueue, JobStatus
from jobq.cli import main
from tests.helpers import started_process, wait_for
from tests.integration._cli_tasks import register
from tests.integration._redis_url import redis_url

pytestmark = pytest.mark.redis

DEADLINE = 30.0  # real seconds any one step may take on a busy machine

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """``run("list", "--db", url)``: call ``jobq.cli.main``; its code, output, errors."""

    def invoke(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


@pytest.fixture(autouse=True)
def task_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the tasks of tests/integration/_cli_tasks.py leave their files."""
    monkeypatch.setenv("JOBQ_CLI_TEST_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def url() -> Iterator[str]:
    with redis_url() as url:
        yield url


@pytest.fixture
def queue(url: str) -> Iterator[DurableQueue]:
    queue = DurableQueue(url)
    register(queue)
    yield queue
    queue.close()


def test_enqueue_list_show_and_stats_with_a_redis_url(run: Run, url: str) -> None:
    code, out, err = run("enqueue", "--db", url, "record", "--args", "[5]", "--json")
    assert code == 0, err
    job_id = json.loads(out)["id"]

    code, out, err = run("list", "--db", url, "--json")
    assert code == 0, err
    [listed] = json.loads(out)["jobs"]
    assert (listed["id"], listed["name"], listed["status"]) == (job_id, "record", "pending")

    code, out, err = run("stats", "--db", url, "--json")
    assert code == 0, err
    assert json.loads(out)["queues"]["default"]["counts"]["pending"] == 1

    code, out, err = run("stats", "--db", url)
    assert code == 0, err
    assert "default" in out
    assert "durability" not in out + err  # the URL's options never reach redis-py


def test_show_with_a_redis_url(run: Run, url: str, queue: DurableQueue) -> None:
    job_id = queue.get_task("record").enqueue(5).id
    code, out, err = run("show", "--db", url, str(job_id), "--json")
    assert code == 0, err
    assert json.loads(out)["job"]["id"] == job_id


def test_the_database_from_the_environment(
    run: Run, url: str, queue: DurableQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue.get_task("record").enqueue(1)
    monkeypatch.setenv("JOBQ_DATABASE", url)
    code, out, err = run("stats", "--json")
    assert code == 0, err
    assert json.loads(out)["queues"]["default"]["counts"]["pending"] == 1


def test_a_worker_process_runs_jobs_on_redis(tmp_path: Path, url: str, queue: DurableQueue) -> None:
    record = queue.get_task("record")
    first = record.enqueue(1).id  # before the worker starts
    args = [sys.executable, "-m", "jobq.cli", "worker", "--db", url]
    args += ["--import", "tests.integration._cli_tasks", "--concurrency", "1"]
    log = tmp_path / "worker.log"
    with started_process(args, log=log) as child:

        def done(job_id: int) -> bool:
            assert child.poll() is None, log.read_text()
            return queue.get(job_id).status is JobStatus.COMPLETED

        wait_for(lambda: done(first), "the first job completed", DEADLINE)
        later = record.enqueue(2).id  # while it runs
        wait_for(lambda: done(later), "a job enqueued later completed", DEADLINE)
        child.send_signal(signal.SIGTERM)
        assert child.wait(DEADLINE) == 0, log.read_text()
    assert "Traceback" not in log.read_text()
    assert (tmp_path / f"record-{later}").exists()
