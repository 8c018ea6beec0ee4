"""Enqueue by name: a process that does not know the task stores its job, a worker in
another real process that knows it checks the arguments against the signature and
fails at once, without retries, those that do not fit; and ``jobq enqueue``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq import DurableQueue, JobStatus, PayloadError
from jobq.cli import main
from tests.helpers import started_process, wait_for


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "jobs.db")


@pytest.fixture
def web(db: str) -> Iterator[DurableQueue]:
    """The web side: a queue with no task registered."""
    queue = DurableQueue(db)
    yield queue
    queue.close()


def test_a_worker_in_another_process_runs_it_and_fails_bad_arguments_at_once(
    tmp_path: Path, db: str, web: DurableQueue
) -> None:
    good = web.enqueue_by_name("reports.build", [7], {"month": "2026-11"}, priority=5)
    assert (good.name, good.queue, good.priority, good.max_attempts) == (
        "reports.build",
        "default",
        5,
        3,
    )
    unexpected = web.enqueue_by_name("reports.build", [7], {"month": "2026-11", "x": 1})
    missing = web.enqueue_by_name("reports.build", args=[7])
    inside = web.enqueue_by_name("reports.fragile", ["a"])
    args = [
        sys.executable,
        "-m",
        "jobq.cli",
        "worker",
        "--db",
        db,
        "--import",
        "tests.integration._by_name_tasks",
        "--concurrency",
        "2",
    ]
    ids = [good.id, unexpected.id, missing.id, inside.id]
    with started_process(args, log=tmp_path / "worker.log") as child:

        def ended() -> bool:
            assert child.poll() is None, (tmp_path / "worker.log").read_text()
            return all(web.get(i).status.is_final for i in ids)

        wait_for(ended, "the jobs ended")
    done = web.get(good.id)
    assert done.status is JobStatus.COMPLETED
    assert done.decoded_result() == "report-7-2026-11"
    for job_id, words in [
        (unexpected.id, "got an unexpected keyword argument 'x'"),
        (missing.id, "missing a required argument: 'month'"),
    ]:
        job = web.get(job_id)
        assert (job.status, job.attempts) == (JobStatus.FAILED, 1)  # never retried
        assert job.error is not None
        assert job.error.type == "ArgumentError"
        assert "do not fit reports.build(account_id, *, month)" in job.error.message
        assert words in job.error.message
    # A TypeError raised inside the task is an ordinary failure: retried, with the
    # max_attempts the enqueuing process gave (3 by default: it does not know the task's 2).
    fragile = web.get(inside.id)
    assert (fragile.status, fragile.attempts) == (JobStatus.FAILED, 3)
    assert fragile.error is not None
    assert fragile.error.type == "TypeError"


def test_arguments_are_checked_as_json_and_options_by_name(web: DurableQueue) -> None:
    with pytest.raises(PayloadError, match=r"the arguments of reports\.build"):
        web.enqueue_by_name("reports.build", [object()])
    with pytest.raises(TypeError, match="args must be a list"):
        web.enqueue_by_name("reports.build", "7")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="kwargs must be a dict with str keys"):
        web.enqueue_by_name("reports.build", [], {1: 2})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"unknown options \['prio'\]"):
        web.enqueue_by_name("reports.build", [1], prio=3)
    with pytest.raises(TypeError, match="task name must be a non-empty str"):
        web.enqueue_by_name("", [1])
    with pytest.raises(ValueError, match="expires_in must be seconds > 0"):
        web.enqueue_by_name("reports.build", [1], expires_in=-1)
    assert web.list() == []
    job = web.enqueue_by_name(
        "reports.build", [1], queue="reports", max_attempts=1, unique_key="k", expires_in=60
    )
    assert (job.queue, job.max_attempts, job.unique_key) == ("reports", 1, "k")
    assert job.expires_at == pytest.approx(job.created_at + 60, abs=1.0)


def test_a_task_registered_here_is_checked_at_enqueue(web: DurableQueue) -> None:
    @web.task("reports.build", queue="reports", max_attempts=5)
    def build(account_id: int, *, month: str) -> str:
        return month

    with pytest.raises(TypeError, match=r"cannot enqueue reports\.build: .*'x'"):
        web.enqueue_by_name("reports.build", [7], {"month": "m", "x": 1})
    job = web.enqueue_by_name("reports.build", [7], {"month": "m"})
    assert (job.queue, job.max_attempts) == ("reports", 5)  # the task's own defaults


def test_the_command_line_enqueues_by_name(
    db: str, web: DurableQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "enqueue",
            "reports.build",
            "--db",
            db,
            "--args",
            "[7]",
            "--kwargs",
            '{"month": "2026-11"}',
            "--delay",
            "5m",
            "--expires-in",
            "1h",
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    record = json.loads(out)
    (job,) = web.list()
    assert record["id"] == job.id
    assert record["payload"] == {"args": [7], "kwargs": {"month": "2026-11"}}
    assert job.run_at == pytest.approx(job.created_at + 300, abs=1.0)
    assert job.expires_at == pytest.approx(job.created_at + 3900, abs=1.0)  # 1 h once due

    assert main(["enqueue", "reports.build", "--db", db, "--queue", "slow"]) == 0
    assert "enqueued: reports.build in queue slow" in capsys.readouterr().out

    assert main(["enqueue", "reports.build", "--db", db, "--args", "{"]) == 2
    err = capsys.readouterr().err
    assert "--args is not JSON" in err
    assert "Traceback" not in err
    assert main(["enqueue", "reports.build", "--db", db, "--kwargs", "[1]"]) == 2
    assert "--kwargs must be a JSON object" in capsys.readouterr().err
    assert len(web.list()) == 2


def test_the_command_line_enqueues_a_job_that_waits_for_others(
    db: str, web: DurableQueue, capsys: pytest.CaptureFixture[str]
) -> None:
    first = web.enqueue_by_name("reports.build", [1])
    argv = ["enqueue", "reports.send", "--db", db, "--depends-on", str(first.id), "--json"]
    assert main([*argv, "--on-dependency-failure", "run"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["waiting_for"], record["on_dependency_failure"]) == (1, "run")
    assert web.dependencies_of(record["id"]) == [first.id]
    assert main(["enqueue", "reports.send", "--db", db, "--depends-on", "999999"]) == 2
    err = capsys.readouterr().err
    assert "depends_on names job 999999" in err
    assert "Traceback" not in err
    assert len(web.list()) == 2
