"""``flask jobq ...`` (:mod:`flask_jobq.cli`) on the app's real SQLite queue.

Verbs run through ``app.test_cli_runner()``; the worker also runs in-process
(stopped by SIGTERM from a helper thread) and as a real ``python -m flask
--app ... jobq worker`` process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask, current_app

from flask_jobq import JobQ, state_for
from flask_jobq.cli import jobq_cli
from jobq import DurableQueue, JobStatus
from tests.helpers import AppFactory, signal_once_completed, started_process, wait_for

DEADLINE = 30.0  # real seconds any one step may take on a busy machine


@pytest.fixture
def app(make_app: AppFactory, ext: JobQ) -> Flask:
    """An app that runs its jobs in a separate worker (``JOBQ_START_WORKERS = False``),
    with ``record`` and ``broken`` tasks and the ``flask jobq`` group."""

    @ext.task("record")
    def record(n: int) -> str:
        return f"{current_app.name}:{n}"  # proves the job ran in the app's context

    @ext.task("broken", max_attempts=1)
    def broken() -> None:
        raise RuntimeError("the mail server said no")

    app = make_app("cliapp", JOBQ_START_WORKERS=False)
    app.cli.add_command(jobq_cli)  # what JobQ.init_app will do
    return app


@pytest.fixture
def queue(app: Flask) -> DurableQueue:
    return state_for(app).queue


@pytest.fixture
def invoke(app: Flask) -> Callable[..., Result]:
    runner = app.test_cli_runner()

    def run(*args: str) -> Result:
        return runner.invoke(args=["jobq", *args])

    return run


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_stats_table_and_json_match_the_queue(
    invoke: Callable[..., Result], queue: DurableQueue
) -> None:
    for n in range(3):
        queue.enqueue("record", n)
    queue.get_task("record").options(queue="mail").enqueue(9)
    assert queue.run_until_empty(queues=["default"], max_jobs=2) == 2

    table = invoke("stats")
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[1].split()[:6] == ["default", "1", "0", "2", "0", "0"]
    data = as_json(invoke("stats", "--json"))
    stats = queue.stats()
    assert set(data["queues"]) == {"default", "mail"}
    for name, entry in stats.queues.items():
        assert data["queues"][name]["counts"] == {s.value: c for s, c in entry.counts.items()}
    assert data["completed_last_minute"] == 2


def test_list_filters_and_pages(invoke: Callable[..., Result], queue: DurableQueue) -> None:
    ids = [queue.enqueue("record", n).id for n in range(4)]
    failed = queue.enqueue("broken").id
    mail = queue.get_task("record").options(queue="mail").enqueue(5).id
    assert queue.run_until_empty(queues=["default"], max_jobs=2) == 2  # ids[0], ids[1]

    def listed(*options: str) -> list[int]:
        return [job["id"] for job in as_json(invoke("list", "--json", *options))["jobs"]]

    assert listed() == [*ids, failed, mail]
    assert listed("--status", "completed") == ids[:2]
    assert listed("--name", "broken") == [failed]
    assert listed("--queue", "mail") == [mail]
    page = as_json(invoke("list", "--json", "--limit", "3", "--status", "pending"))
    assert [job["id"] for job in page["jobs"]] == [*ids[2:], failed]
    assert page["next_after"] == failed
    assert listed("--status", "pending", "--after", str(failed)) == [mail]
    first = as_json(invoke("list", "--json", "--limit", "1"))["jobs"][0]
    assert first["result"] == "cliapp:0"

    table = invoke("list", "--status", "completed")
    assert table.exit_code == 0
    assert [int(line.split()[0]) for line in table.stdout.splitlines()[1:]] == ids[:2]


def test_cancel_retry_and_purge(invoke: Callable[..., Result], queue: DurableQueue) -> None:
    job_id = queue.enqueue("record", 1).id
    cancelled = invoke("cancel", str(job_id))
    assert (cancelled.exit_code, cancelled.stdout) == (0, f"job {job_id} cancelled\n")
    assert queue.get(job_id).status is JobStatus.CANCELLED

    retried = as_json(invoke("retry", str(job_id), "--json"))
    assert (retried["id"], retried["status"]) == (job_id, "pending")
    assert queue.run_until_empty() == 1
    broken = queue.enqueue("broken").id
    assert queue.run_until_empty() == 1
    assert queue.get(broken).status is JobStatus.FAILED

    kept = invoke("purge", "--older-than", "1h")
    assert kept.stdout.startswith("deleted 0 jobs")
    purged = as_json(invoke("purge", "--older-than", "0", "--status", "failed", "--json"))
    assert purged["deleted"] == 1
    assert [job.id for job in queue.list()] == [job_id]
    assert as_json(invoke("purge", "--older-than", "0s", "--json"))["deleted"] == 1
    assert queue.list() == []


def test_errors_are_one_line_with_exit_code_2(
    invoke: Callable[..., Result], queue: DurableQueue
) -> None:
    done = queue.enqueue("record", 1).id
    queue.run_until_empty()
    assert_one_line_error(invoke("cancel", "999"), "no job with id 999")
    assert_one_line_error(invoke("retry", "999"), "no job with id 999")
    assert_one_line_error(invoke("cancel", "abc"), "invalid job id 'abc'")
    assert_one_line_error(invoke("retry", str(done)), "only failed or cancelled")
    assert_one_line_error(invoke("list", "--status", "nope"), "unknown status 'nope'")
    assert_one_line_error(invoke("list", "--limit", "0"), "--limit")
    assert_one_line_error(
        invoke("purge", "--older-than", "1d", "--status", "processing"),
        "cannot purge processing jobs",
    )
    assert_one_line_error(invoke("purge", "--older-than", "later"), "invalid duration")
    assert_one_line_error(invoke("worker", "--concurrency", "0"), "--concurrency")


def test_job_data_reaches_the_terminal_escaped(
    invoke: Callable[..., Result], queue: DurableQueue
) -> None:
    from tests.integration import _cli_hostile_tasks as hostile

    hostile.register(queue)
    job_id = queue.get_task(hostile.NAME).enqueue().id
    queue.run_until_empty(queues=[hostile.QUEUE])

    for args in (["list"], ["stats"], ["list", "--json"], ["retry", str(job_id)]):
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        text = hostile.assert_terminal_safe(result.stdout_bytes)
        assert "q\\x1b]0;title\\x07" in text or "--json" in args
    assert "RuntimeError: \\x1b]52;c;" in invoke("list").stdout


def test_an_app_without_the_extension_is_a_clear_error(tmp_path: Path) -> None:
    bare = Flask("bare", instance_path=str(tmp_path))
    bare.cli.add_command(jobq_cli)
    result = bare.test_cli_runner().invoke(args=["jobq", "stats"])
    assert_one_line_error(result, "not initialised", "init_app")


def test_worker_in_process_until_sigterm(
    app: Flask, invoke: Callable[..., Result], queue: DurableQueue
) -> None:
    ids = [queue.enqueue("record", n).id for n in range(5)]
    before = signal.getsignal(signal.SIGTERM)

    with signal_once_completed(queue, ids, signal.SIGTERM, DEADLINE):
        result = invoke("worker", "--concurrency", "2", "--grace", "5")
    assert result.exit_code == 0, result.output
    assert [queue.get(i).decoded_result() for i in ids] == [f"cliapp:{n}" for n in range(5)]
    assert signal.getsignal(signal.SIGTERM) is before
    assert state_for(app).pool is None  # JOBQ_START_WORKERS = False: nothing else started


def test_worker_fires_the_schedules_of_the_config(make_app: AppFactory, ext: JobQ) -> None:
    @ext.task("tick")
    def tick(label: str) -> str:
        return label

    app = make_app(
        "ticker",
        JOBQ_START_WORKERS=False,
        JOBQ_SCHEDULES={"every-second": {"task": "tick", "every": 1, "args": ["x"]}},
    )
    app.cli.add_command(jobq_cli)
    queue = state_for(app).queue

    def terminate_after_a_fire() -> None:
        try:
            wait_for(
                lambda: bool(queue.list(status=JobStatus.COMPLETED)),
                "a fired job completed",
                DEADLINE,
                interval=0.01,
            )
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=terminate_after_a_fire)
    helper.start()
    try:
        result = app.test_cli_runner().invoke(args=["jobq", "worker", "--grace", "5"])
    finally:
        helper.join(DEADLINE + 5)
    assert result.exit_code == 0, result.output
    [info] = queue.schedules()
    assert info.name == "every-second"
    assert [job.decoded_result() for job in queue.list(status=JobStatus.COMPLETED)][:1] == ["x"]


# -- recurring schedules ------------------------------------------------------------------


@pytest.fixture
def scheduled(queue: DurableQueue) -> DurableQueue:
    """The app's queue with two stored schedules (declared as a worker process would)."""
    queue.schedule("record", every=600, name="ten-minutely", args=[3])
    queue.schedule("broken", cron="0 9 * * MON-FRI", tz="America/New_York", name="weekday 9am")
    assert queue.fire_due_schedules() == []  # stored; first fires still ahead
    return queue


def test_schedules_table_and_json(invoke: Callable[..., Result], scheduled: DurableQueue) -> None:
    due = scheduled.schedules()[0].next_fire_at
    # At 14:00 UTC on a weekday (9am in New York) both schedules are due at once.
    fired_now = scheduled.fire_due_schedules(now=due)
    fired = scheduled.schedules()[0].last_job_id
    assert fired in fired_now

    table = invoke("schedules")

    assert table.exit_code == 0, table.output
    header, ten, weekday = table.stdout.splitlines()
    assert header.split("  ")[0] == "NAME"
    assert "NEXT FIRE (UTC)" in header
    assert ten.split()[:5] == ["ten-minutely", "record", "every", "600", "s"]
    assert ten.split()[-2:] == [str(fired), "no"]
    assert "cron '0 9 * * MON-FRI' (America/New_York)" in weekday
    data = as_json(invoke("schedules", "--json"))
    assert data == {"schedules": [info.as_dict() for info in scheduled.schedules()]}
    assert data["schedules"][0]["last_job_id"] == fired
    assert data["schedules"][0]["last_fire_at"] == due


def test_schedules_without_any(invoke: Callable[..., Result]) -> None:
    result = invoke("schedules")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("no schedules")


def test_pause_resume_and_trigger_a_schedule(
    invoke: Callable[..., Result], scheduled: DurableQueue
) -> None:
    paused = invoke("pause-schedule", "weekday 9am")
    assert paused.exit_code == 0, paused.output
    assert paused.stdout.startswith("schedule 'weekday 9am' paused")
    assert [info.paused for info in scheduled.schedules()] == [False, True]
    assert scheduled.fire_due_schedules(now=time.time() + 8 * 86400) != []  # the other one

    triggered = invoke("trigger-schedule", "weekday 9am")
    [job] = scheduled.list(name="broken")
    assert triggered.stdout == (
        f"schedule 'weekday 9am' triggered: job {job.id} (broken, queue default)\n"
    )
    assert job.max_attempts == 1  # the app's task options: its tasks are registered
    ran = as_json(invoke("trigger-schedule", "ten-minutely", "--json"))
    assert (ran["name"], ran["payload"]) == ("record", {"args": [3], "kwargs": {}})
    scheduled.run_until_empty()
    assert scheduled.get(ran["id"]).decoded_result() == "cliapp:3"

    resumed = as_json(invoke("resume-schedule", "weekday 9am", "--json"))
    assert resumed == scheduled.schedules()[1].as_dict()
    assert resumed["paused"] is False
    assert resumed["next_fire_at"] > time.time()
    assert as_json(invoke("pause-schedule", "ten-minutely", "--json"))["paused"] is True


def test_schedule_errors_are_one_line_with_exit_code_2(
    invoke: Callable[..., Result], scheduled: DurableQueue
) -> None:
    before = scheduled.schedules()
    for verb in ("pause-schedule", "resume-schedule", "trigger-schedule"):
        assert_one_line_error(
            invoke(verb, "nope"), "no schedule named 'nope'", "known: 'ten-minutely', 'weekday 9am'"
        )
        assert_one_line_error(invoke(verb, "a/b\nc"), "no schedule named 'a/b\\nc'")
        missing = invoke(verb)
        assert missing.exit_code == 2
        assert "Missing argument 'NAME'" in missing.stderr
    assert scheduled.schedules() == before
    assert scheduled.list() == []


# -- a real worker process ----------------------------------------------------------------

APP_MODULE = '''
"""A small app for tests/integration/flask/test_cli.py, run with `flask --app ... jobq worker`."""

import os
import time
from pathlib import Path

from flask import Flask, current_app

from flask_jobq import JobQ
from flask_jobq.cli import jobq_cli

folder = Path(os.environ["JOBQ_CLI_TEST_DIR"])
jobq_ext = JobQ()


@jobq_ext.task("record")
def record(n: int) -> str:
    (folder / f"record-{n}").touch()
    return current_app.name


@jobq_ext.task("slow", priority=10)
def slow(seconds: float) -> str:
    (folder / "slow-started").touch()
    time.sleep(min(seconds, 60.0))
    (folder / "slow-done").touch()
    return "finished"


app = Flask("cliapp", instance_path=str(folder / "instance"))
app.config.update(JOBQ_DATABASE=str(folder / "jobs.db"), JOBQ_START_WORKERS=False,
                  JOBQ_CONCURRENCY=1)
jobq_ext.init_app(app)
if "jobq" not in app.cli.commands:
    app.cli.add_command(jobq_cli)
'''


@contextlib.contextmanager
def flask_worker(folder: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """``python -m flask --app <folder>/cliapp.py jobq worker`` in its own session,
    output in a log file; always killed and reaped."""
    (folder / "cliapp.py").write_text(textwrap.dedent(APP_MODULE))
    log = folder / "worker.log"
    env = {**os.environ, "JOBQ_CLI_TEST_DIR": str(folder), "FLASK_APP": str(folder / "cliapp.py")}
    args = [
        sys.executable,
        "-m",
        "flask",
        "--app",
        str(folder / "cliapp.py"),
        "jobq",
        "worker",
        "--grace",
        "20",
    ]
    with started_process(args, log=log, cwd=folder, env=env) as child:
        yield child, log


def test_flask_worker_process_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "jobs.db")  # the same file, as the web app would

    @queue.task("record")
    def record(n: int) -> None: ...

    @queue.task("slow", priority=10)
    def slow(seconds: float) -> None: ...

    try:
        first = [record.enqueue(n).id for n in range(3)]
        with flask_worker(tmp_path) as (child, log):

            def completed(ids: list[int]) -> bool:
                assert child.poll() is None, log.read_text()
                return all(queue.get(i).status is JobStatus.COMPLETED for i in ids)

            wait_for(lambda: completed(first), "the first jobs completed")
            long_job = slow.enqueue(1.5).id
            wait_for(lambda: (tmp_path / "slow-started").exists(), "the slow job started")
            waiting = [record.enqueue(n).id for n in range(10, 13)]
            wait_for(
                lambda: any(queue.get(i).status is JobStatus.PROCESSING for i in waiting),
                "a job claimed ahead",
            )
            child.send_signal(signal.SIGTERM)
            assert child.wait(DEADLINE) == 0, log.read_text()

        output = log.read_text()
        assert "Traceback" not in output
        assert "SIGTERM: stopping" in output
        assert [queue.get(i).decoded_result() for i in first] == ["cliapp"] * 3
        assert queue.get(long_job).status is JobStatus.COMPLETED
        assert (tmp_path / "slow-done").exists()
        for job_id in waiting:
            job = queue.get(job_id)
            assert (job.status, job.attempts) == (JobStatus.PENDING, 0)
        assert not list(tmp_path.glob("record-1?"))
    finally:
        queue.close()
