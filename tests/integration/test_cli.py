"""The plain ``jobq`` command line (:mod:`jobq.cli`) on real SQLite files.

Most verbs run in-process through ``main(argv)``; the worker also runs as a
real ``python -m jobq.cli worker`` process stopped with SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

import jobq
from jobq import DurableQueue, JobStatus
from jobq.cli import CommandError, main, parse_duration, run_worker
from jobq.cli.output import terminal_safe
from jobq.testing import FakeClock
from tests.helpers import (
    ROOT,
    drop_postgres_schema,
    drop_redis_prefix,
    postgres_schema_url,
    redis_test_prefix,
    require_redis,
    signal_once_completed,
    started_process,
    wait_for,
)
from tests.integration._cli_hostile_tasks import assert_terminal_safe
from tests.integration._cli_tasks import register

DEADLINE = 30.0  # real seconds any one step may take on a busy machine


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> object:
        return json.loads(self.out)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``run("list", "--db", path)``: call ``jobq.cli.main`` and capture its output."""

    def invoke(*argv: str) -> Result:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's own exits (usage errors, --help)
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.fixture(autouse=True)
def task_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the tasks of tests/integration/_cli_tasks.py leave their files."""
    monkeypatch.setenv("JOBQ_CLI_TEST_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "jobs.db")


@pytest.fixture
def queue(db: str) -> Iterator[DurableQueue]:
    """A queue on ``db`` with the tasks of tests/integration/_cli_tasks.py registered."""
    queue = DurableQueue(db)
    register(queue)
    yield queue
    queue.close()


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.code == 2, (result.out, result.err)
    assert result.out == ""
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    for fragment in fragments:
        assert fragment in result.err


def test_stats_table_and_json(run: Callable[..., Result], db: str, queue: DurableQueue) -> None:
    record = queue.get_task("record")
    for n in range(3):
        record.enqueue(n)
    record.options(queue="mail").enqueue(9)
    assert queue.run_until_empty(queues=["default"], max_jobs=2) == 2
    queue.pause("mail")

    table = run("stats", "--db", db)
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert lines[0].split()[:6] == [
        "QUEUE",
        "PENDING",
        "PROCESSING",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
    ]
    assert lines[1].split()[:6] == ["default", "1", "0", "2", "0", "0"]
    assert lines[2].split()[:2] == ["mail", "1"]
    assert lines[2].split()[-1] == "yes"
    assert "2 completed" in lines[-1]

    data = run("stats", "--db", db, "--json").json()
    assert isinstance(data, dict)
    assert data["queues"]["default"]["counts"] == {
        "pending": 1,
        "processing": 0,
        "completed": 2,
        "failed": 0,
        "cancelled": 0,
    }
    assert data["queues"]["mail"]["paused"] is True
    assert data["paused"] == ["mail"]
    assert data["completed_last_minute"] == 2


def test_stats_of_an_empty_database(
    run: Callable[..., Result], db: str, queue: DurableQueue
) -> None:
    result = run("stats", "--db", db)
    assert result.code == 0
    assert result.out.startswith("no jobs")


def test_database_from_the_environment(
    run: Callable[..., Result], db: str, queue: DurableQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue.get_task("record").enqueue(1)
    monkeypatch.setenv("JOBQ_DATABASE", db)
    data = run("stats", "--json").json()
    assert isinstance(data, dict)
    assert data["queues"]["default"]["counts"]["pending"] == 1
    by_url = run("stats", "--db", f"sqlite:///{db}", "--json").json()
    assert isinstance(by_url, dict)
    assert by_url["queues"]["default"]["counts"] == data["queues"]["default"]["counts"]


def test_list_filters_pages_and_json(
    run: Callable[..., Result], db: str, queue: DurableQueue
) -> None:
    record, slow = queue.get_task("record"), queue.get_task("slow")
    ids = [record.enqueue(n).id for n in range(4)]
    mail = record.options(queue="mail").enqueue(7).id
    slow_id = slow.options(queue="batch").enqueue(0.0).id
    assert queue.run_until_empty(queues=["default"], max_jobs=1) == 1  # ids[0] completes

    table = run("list", "--db", db)
    assert table.code == 0
    rows = [line.split() for line in table.out.splitlines()[1:]]
    assert [int(row[0]) for row in rows] == [*ids, mail, slow_id]
    assert rows[0][1:5] == ["completed", "default", "record", "1/3"]

    def listed(*options: str) -> list[int]:
        data = run("list", "--db", db, "--json", *options).json()
        assert isinstance(data, dict)
        return [job["id"] for job in data["jobs"]]

    assert listed("--status", "completed") == [ids[0]]
    assert listed("--status", "PENDING") == [*ids[1:], mail, slow_id]
    assert listed("--name", "slow") == [slow_id]
    assert listed("--queue", "mail") == [mail]
    assert listed("--status", "pending", "--queue", "default", "--name", "record") == ids[1:]

    page = run("list", "--db", db, "--json", "--limit", "2").json()
    assert isinstance(page, dict)
    assert [job["id"] for job in page["jobs"]] == ids[:2]
    assert page["next_after"] == ids[1]
    assert listed("--after", str(ids[1]), "--limit", "2") == ids[2:4]
    last = run("list", "--db", db, "--json", "--after", str(ids[3])).json()
    assert isinstance(last, dict)
    assert last["next_after"] is None

    first = page["jobs"][0]
    assert first["status"] == "completed"
    assert first["payload"] == {"args": [0], "kwargs": {}}
    assert first["result"] == 0
    assert "lease_token" not in first
    assert "--after 2" in run("list", "--db", db, "--limit", "2").out


def test_list_shows_the_last_error(run: Callable[..., Result], db: str) -> None:
    queue = DurableQueue(db)
    try:

        @queue.task("broken", max_attempts=1)
        def broken() -> None:
            raise RuntimeError("the mail server said no")

        job_id = broken.enqueue().id
        queue.run_until_empty()
    finally:
        queue.close()
    result = run("list", "--db", db, "--status", "failed")
    assert result.code == 0
    assert f"{job_id}  failed" in result.out
    assert "RuntimeError: the mail server said no" in result.out
    data = run("list", "--db", db, "--json").json()
    assert isinstance(data, dict)
    assert data["jobs"][0]["error"]["type"] == "RuntimeError"


def test_cancel_and_retry(run: Callable[..., Result], db: str, queue: DurableQueue) -> None:
    job_id = queue.get_task("record").enqueue(1).id

    cancelled = run("cancel", str(job_id), "--db", db)
    assert (cancelled.code, cancelled.out) == (0, f"job {job_id} cancelled\n")
    assert queue.get(job_id).status is JobStatus.CANCELLED
    again = run("cancel", str(job_id), "--db", db)
    assert again.code == 0
    assert "already cancelled" in again.out

    retried = run("retry", str(job_id), "--db", db, "--json").json()
    assert isinstance(retried, dict)
    assert (retried["id"], retried["status"]) == (job_id, "pending")
    assert queue.get(job_id).status is JobStatus.PENDING

    as_json = run("cancel", str(job_id), "--db", db, "--json").json()
    assert isinstance(as_json, dict)
    assert as_json["status"] == "cancelled"
    delayed = run("retry", str(job_id), "--db", db, "--delay", "1h")
    assert delayed.code == 0
    assert queue.get(job_id).run_at > time.time() + 3500


def test_cancel_a_running_job_asks_it_to_stop(
    run: Callable[..., Result], db: str, queue: DurableQueue
) -> None:
    job_id = queue.get_task("record").enqueue(1).id
    claimed = queue.storage.claim(
        ["default"], owner="test", now=time.time(), lease_seconds=60, limit=1
    )
    assert [job.id for job in claimed] == [job_id]
    result = run("cancel", str(job_id), "--db", db)
    assert result.code == 0
    assert "cancel requested" in result.out
    assert queue.get(job_id).cancel_requested


def test_purge_by_age_and_status(run: Callable[..., Result], db: str) -> None:
    two_days_ago = time.time() - 2 * 86400
    queue = DurableQueue(db, clock=FakeClock(two_days_ago))
    try:
        register(queue)

        @queue.task("broken", max_attempts=1)
        def broken() -> None:
            raise RuntimeError("no")

        done = [queue.get_task("record").enqueue(n).id for n in range(3)]
        failed = broken.enqueue().id
        pending = queue.get_task("record").enqueue(9).id
        assert queue.run_until_empty(max_jobs=4) == 4
    finally:
        queue.close()

    kept = run("purge", "--db", db, "--older-than", "3d")
    assert (kept.code, kept.out) == (
        0,
        "deleted 0 jobs (completed, failed, cancelled) older than 3d\n",
    )
    only_completed = run(
        "purge", "--db", db, "--older-than", "36h", "--status", "completed", "--json"
    ).json()
    assert only_completed == {"deleted": 3, "statuses": ["completed"], "older_than": 129600.0}
    rest = run("purge", "--db", db, "--older-than", "1d", "--status", "failed,cancelled")
    assert rest.out == "deleted 1 job (failed, cancelled) older than 1d\n"

    left = run("list", "--db", db, "--json").json()
    assert isinstance(left, dict)
    assert [job["id"] for job in left["jobs"]] == [pending]
    assert failed not in done


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("90", 90.0),
        ("1.5", 1.5),
        ("45s", 45.0),
        ("15m", 900.0),
        ("12h", 43200.0),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        (" 3D ", 259200.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-1", "7y", "d", "1e3", "nan", "1h30m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(CommandError, match="invalid duration"):
        parse_duration(text)


def test_errors_are_one_line_with_exit_code_2(
    run: Callable[..., Result],
    db: str,
    queue: DurableQueue,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    done = queue.get_task("record").enqueue(1).id
    queue.run_until_empty()
    missing = str(tmp_path / "missing.db")
    not_a_db = tmp_path / "junk.db"
    not_a_db.write_bytes(b"this is not SQLite" * 100)
    monkeypatch.delenv("JOBQ_DATABASE", raising=False)

    assert_one_line_error(run("cancel", "999", "--db", db), "no job with id 999")
    assert_one_line_error(run("retry", "999", "--db", db), "no job with id 999")
    assert_one_line_error(run("retry", str(done), "--db", db), "completed", "failed or cancelled")
    assert_one_line_error(run("list", "--db", db, "--status", "nope"), "unknown status 'nope'")
    assert_one_line_error(
        run("purge", "--db", db, "--older-than", "1d", "--status", "nope"), "unknown status 'nope'"
    )
    assert_one_line_error(
        run("purge", "--db", db, "--older-than", "1d", "--status", "pending"),
        "cannot purge pending jobs",
    )
    assert_one_line_error(run("purge", "--db", db, "--older-than", "soon"), "invalid duration")
    assert_one_line_error(run("purge", "--db", db), "--older-than")
    assert_one_line_error(run("list", "--db", db, "--limit", "0"), "--limit")
    assert_one_line_error(run("cancel", "abc", "--db", db), "invalid int value")
    assert_one_line_error(run("retry", "1", "--db", db, "--delay", "x"), "invalid duration")
    assert_one_line_error(run("stats", "--db", missing), f"no database file at '{missing}'")
    assert_one_line_error(run("list"), "no queue given", "--app", "JOBQ_DATABASE")
    assert_one_line_error(run("stats", "--db", str(not_a_db)), "not a database")
    assert_one_line_error(run("frobnicate", "--db", db), "invalid choice")
    assert_one_line_error(run("worker", "--db", db), "no task is registered", "--import")
    assert_one_line_error(
        run("worker", "--db", db, "--import", "tests.no_such_module"),
        "cannot import 'tests.no_such_module'",
    )
    assert_one_line_error(
        run(
            "worker",
            "--db",
            str(tmp_path / "no" / "dir" / "x.db"),
            "--import",
            "tests.integration._cli_tasks",
        ),
        "no database file at",
    )
    assert not Path(missing).exists()  # looking never creates a database
    with pytest.raises(jobq.NotConfigured):
        jobq.default_queue()  # --import configured it only while the command ran


def test_help_explains_how_tasks_are_found(run: Callable[..., Result]) -> None:
    result = run("--help")
    assert result.code == 0
    assert "jobq.default_queue()" in result.out
    assert "--import" in result.out
    for verb in ("worker", "stats", "list", "cancel", "retry", "purge"):
        assert verb in result.out


def test_run_worker_in_process_until_sigint(queue: DurableQueue) -> None:
    ids = [queue.get_task("record").enqueue(n).id for n in range(5)]
    before = signal.getsignal(signal.SIGINT)

    with signal_once_completed(queue, ids, signal.SIGINT, DEADLINE):
        assert run_worker(queue, concurrency=2, grace=5.0) == 0
    assert [queue.get(i).status for i in ids] == [JobStatus.COMPLETED] * 5
    assert signal.getsignal(signal.SIGINT) is before  # our handler is gone again


def test_run_worker_rejects_bad_options(queue: DurableQueue) -> None:
    with pytest.raises(CommandError, match="--concurrency must be at least 1, got 0"):
        run_worker(queue, concurrency=0)
    with pytest.raises(CommandError, match="--grace"):
        run_worker(queue, grace=-1)


# -- a real worker process ----------------------------------------------------------------


@contextlib.contextmanager
def worker_process(args: list[str], folder: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """Start ``args`` in its own session (environment included: the tasks' folder), output
    in a log file; always killed and reaped."""
    log = folder / "worker.log"
    with started_process(args, log=log) as child:
        yield child, log


def test_worker_process_runs_jobs_and_stops_gracefully_on_sigterm(
    tmp_path: Path, db: str, queue: DurableQueue
) -> None:
    record, slow = queue.get_task("record"), queue.get_task("slow")
    first = [record.enqueue(n).id for n in range(3)]  # enqueued before the worker starts
    args = [
        sys.executable,
        "-m",
        "jobq.cli",
        "worker",
        "--db",
        db,
        "--import",
        "tests.integration._cli_tasks",
        "--concurrency",
        "1",
        "--grace",
        "20",
    ]
    with worker_process(args, tmp_path) as (child, log):

        def done(ids: list[int]) -> bool:
            assert child.poll() is None, log.read_text()
            return all(queue.get(i).status is JobStatus.COMPLETED for i in ids)

        wait_for(lambda: done(first), "the first jobs completed")
        later = record.enqueue(3).id  # enqueued while it runs
        wait_for(lambda: done([later]), "a job enqueued later completed")

        long_job = slow.enqueue(1.5).id
        wait_for(lambda: (tmp_path / f"started-{long_job}").exists(), "the slow job started")
        waiting = [record.enqueue(n).id for n in range(3)]
        # Its only thread is busy: the pool claims (prefetches) one job it cannot start yet.
        wait_for(
            lambda: any(queue.get(i).status is JobStatus.PROCESSING for i in waiting),
            "a job claimed ahead",
        )
        child.send_signal(signal.SIGTERM)
        assert child.wait(DEADLINE) == 0, log.read_text()

    output = log.read_text()
    assert "Traceback" not in output
    assert "SIGTERM: stopping" in output
    assert "worker stopped" in output
    assert queue.get(long_job).status is JobStatus.COMPLETED  # finished within the grace
    assert queue.get(long_job).decoded_result() == "finished"
    assert (tmp_path / f"done-{long_job}").exists()
    for job_id in waiting:  # handed back untouched, the claimed one included
        job = queue.get(job_id)
        assert (job.status, job.attempts) == (JobStatus.PENDING, 0)
        assert not (tmp_path / f"record-{job_id}").exists()
    assert sorted(int(p.name.split("-")[1]) for p in tmp_path.glob("record-*")) == [*first, later]


# -- moving jobs to PostgreSQL ---------------------------------------------------------


@pytest.mark.postgres
def test_move_jobs_from_sqlite_to_postgresql_once(
    run: Callable[..., Result], db: str, queue: DurableQueue
) -> None:
    record = queue.get_task("record")
    busy = record.options(priority=9).enqueue("busy")
    due = record.enqueue("due")
    later = record.options(run_at=time.time() + 3600, priority=5, unique_key="r-7").enqueue("l")
    claimed = queue.storage.claim(["default"], owner="w", now=time.time(), lease_seconds=30)
    assert [job.id for job in claimed] == [busy.id]  # stays in SQLite, counted
    url = postgres_schema_url()
    try:
        result = run("move-jobs", "--from", db, "--to", url, "--json")
        assert result.code == 0, result.err
        assert json.loads(result.out) == {"moved": 2, "still_processing": 1}
        again = run("move-jobs", "--from", db, "--to", url)
        assert again.code == 0, again.err
        assert again.out.startswith("moved 0 pending job(s); 1 job(s) are still processing")

        target = DurableQueue(url)
        try:
            moved = {job.payload: job for job in target.list()}
        finally:
            target.close()
    finally:
        drop_postgres_schema(url)
    assert sorted(moved) == sorted([due.payload, later.payload])
    scheduled = moved[later.payload]
    assert (scheduled.run_at, scheduled.priority, scheduled.unique_key, scheduled.status) == (
        later.run_at,
        5,
        "r-7",
        JobStatus.PENDING,
    )
    assert {queue.get(job.id).status for job in (due, later)} == {JobStatus.CANCELLED}
    assert queue.get(busy.id).status is JobStatus.PROCESSING


def test_list_shows_a_job_waiting_for_others_as_waiting(
    run: Callable[..., Result], db: str, queue: DurableQueue
) -> None:
    record = queue.get_task("record")
    first = record.enqueue("first")
    after = record.options(depends_on=[first]).enqueue("after")
    rows = {line.split()[0]: line.split()[1] for line in run("list", "--db", db).out.splitlines()}
    assert (rows[str(first.id)], rows[str(after.id)]) == ("pending", "waiting")
    listed = run("list", "--db", db, "--json", "--status", "pending").json()
    assert [job["waiting_for"] for job in listed["jobs"]] == [0, 1]


def test_move_jobs_refuses_jobs_waiting_for_others_and_moves_nothing(
    run: Callable[..., Result], db: str, queue: DurableQueue, tmp_path: Path
) -> None:
    record = queue.get_task("record")
    first = record.enqueue("first")
    record.options(depends_on=[first]).enqueue("after")
    other = str(tmp_path / "other.db")
    DurableQueue(other).close()
    result = run("move-jobs", "--from", db, "--to", other)
    assert_one_line_error(result, "1 job(s) of the source wait for other jobs")
    assert queue.get(first.id).status is JobStatus.PENDING  # nothing moved nor cancelled


def test_move_jobs_needs_an_existing_source(run: Callable[..., Result], tmp_path: Path) -> None:
    result = run(
        "move-jobs", "--from", str(tmp_path / "missing.db"), "--to", str(tmp_path / "other.db")
    )
    assert_one_line_error(result, "no database file at", "(--from ")


def test_move_jobs_refuses_the_same_database_at_both_ends(
    run: Callable[..., Result], db: str, queue: DurableQueue
) -> None:
    job = queue.get_task("record").enqueue("stay")
    result = run("move-jobs", "--from", db, "--to", f"sqlite:///{os.path.abspath(db)}")
    assert_one_line_error(result, "--from and --to name the same database")
    assert queue.get(job.id).status is JobStatus.PENDING  # nothing moved nor cancelled


@pytest.mark.redis
def test_move_jobs_to_redis_and_back_by_url(
    run: Callable[..., Result], db: str, queue: DurableQueue, tmp_path: Path
) -> None:
    record = queue.get_task("record")
    due = record.enqueue("due")
    later = record.options(run_at=time.time() + 3600, priority=5, unique_key="r-7").enqueue("l")
    prefix = redis_test_prefix()
    url = f"{require_redis()}?prefix={prefix}&durability=ignore"
    back = str(tmp_path / "back.db")
    DurableQueue(back).close()
    try:
        there = run("move-jobs", "--from", db, "--to", url, "--json")
        assert there.code == 0, there.err
        assert json.loads(there.out) == {"moved": 2, "still_processing": 0}
        assert_one_line_error(
            run("move-jobs", "--from", url, "--to", url), "--from and --to name the same database"
        )
        returned = run("move-jobs", "--from", url, "--to", back, "--json")
        assert returned.code == 0, returned.err
        assert json.loads(returned.out) == {"moved": 2, "still_processing": 0}
        again = run("move-jobs", "--from", url, "--to", back)
        assert (again.code, again.out.strip()) == (0, "moved 0 pending job(s)")
        on_redis = DurableQueue(url)
        try:
            left = {job.payload: job.status for job in on_redis.list()}
        finally:
            on_redis.close()
    finally:
        drop_redis_prefix(prefix)
    assert left == {due.payload: JobStatus.CANCELLED, later.payload: JobStatus.CANCELLED}
    target = DurableQueue(back)
    try:
        moved = {job.payload: job for job in target.list()}
    finally:
        target.close()
    assert sorted(moved) == sorted([due.payload, later.payload])
    scheduled = moved[later.payload]
    assert (scheduled.run_at, scheduled.priority, scheduled.unique_key, scheduled.status) == (
        later.run_at,
        5,
        "r-7",
        JobStatus.PENDING,
    )


# -- recurring schedules ------------------------------------------------------------------

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def scheduled(db: str) -> Iterator[tuple[DurableQueue, FakeClock]]:
    """A queue on ``db`` (a fake clock at 2026-06-01 12:00 UTC) that stored two schedules,
    ``hourly`` (fired once, at 13:00) and ``nightly cleanup`` (02:30 in Paris)."""
    clock = FakeClock(T0)
    queue = DurableQueue(db, clock=clock)
    register(queue)
    queue.schedule("record", every=3600, name="hourly", args=[1])
    queue.schedule(
        "slow",
        cron="30 2 * * *",
        tz="Europe/Paris",
        name="nightly cleanup",
        args=[0.0],
        missed="skip",
    )
    assert queue.fire_due_schedules() == []
    clock.advance(3600)
    assert len(queue.fire_due_schedules()) == 1
    yield queue, clock
    queue.close()


def test_schedules_table_and_json(
    run: Callable[..., Result], db: str, scheduled: tuple[DurableQueue, FakeClock]
) -> None:
    queue, _ = scheduled
    [fired] = queue.list(name="record")

    table = run("schedules", "--db", db)

    assert table.code == 0, table.err
    assert table.out.splitlines() == [
        "NAME             TASK    WHEN                              NEXT FIRE (UTC)      "
        "LAST FIRE (UTC)      LAST JOB  PAUSED",
        f"hourly           record  every 3600 s                      2026-06-01 14:00:00  "
        f"2026-06-01 13:00:00  {fired.id:<8}  no",
        "nightly cleanup  slow    cron '30 2 * * *' (Europe/Paris)  2026-06-02 00:30:00  "
        "-                    -         no",
    ]
    data = run("schedules", "--db", db, "--json").json()
    assert data == {"schedules": [info.as_dict() for info in queue.schedules()]}
    assert isinstance(data, dict)
    hourly = data["schedules"][0]
    assert (hourly["next_fire_at"], hourly["last_fire_at"], hourly["last_job_id"]) == (
        T0 + 7200,
        T0 + 3600,
        fired.id,
    )
    assert hourly["args"] == [1]


def test_schedules_of_a_database_without_any(
    run: Callable[..., Result], db: str, queue: DurableQueue
) -> None:
    result = run("schedules", "--db", db)
    assert result.code == 0
    assert result.out.startswith("no schedules (a schedule is stored when code declares it")
    assert run("schedules", "--db", db, "--json").json() == {"schedules": []}


def test_pause_resume_and_trigger_a_schedule(
    run: Callable[..., Result],
    db: str,
    scheduled: tuple[DurableQueue, FakeClock],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue, clock = scheduled

    paused = run("pause-schedule", "nightly cleanup", "--db", db)
    assert (paused.code, paused.out) == (
        0,
        "schedule 'nightly cleanup' paused (cron '30 2 * * *' (Europe/Paris))\n",
    )
    assert [info.paused for info in queue.schedules()] == [False, True]
    clock.advance(86400)
    assert queue.fire_due_schedules() == [queue.list(name="record")[-1].id]  # hourly only
    table = run("schedules", "--db", db).out.splitlines()
    assert table[2].split()[-3:] == ["-", "-", "yes"]  # no next fire while paused
    again = run("pause-schedule", "nightly cleanup", "--db", db)
    assert again.out == "schedule 'nightly cleanup' is already paused\n"

    triggered = run("trigger-schedule", "nightly cleanup", "--db", db)
    [job] = queue.list(name="slow")
    assert (triggered.code, triggered.out) == (
        0,
        f"schedule 'nightly cleanup' triggered: job {job.id} (slow, queue default)\n",
    )
    # This process does not import the task: the options stored with the schedule count.
    assert (job.priority, job.payload) == (10, '{"args":[0.0],"kwargs":{}}')
    as_json = run("trigger-schedule", "nightly cleanup", "--db", db, "--json").json()
    assert isinstance(as_json, dict)
    assert (as_json["name"], as_json["priority"]) == ("slow", 10)
    assert [info.paused for info in queue.schedules()] == [False, True]  # trigger kept it

    before = time.time()
    resumed = run("resume-schedule", "nightly cleanup", "--db", db, "--json").json()
    assert isinstance(resumed, dict)
    assert resumed == queue.schedules()[1].as_dict()
    assert resumed["paused"] is False
    assert before < resumed["next_fire_at"] <= before + 86400 + 3600  # from real now
    text = run("resume-schedule", "nightly cleanup", "--db", db).out
    assert text.startswith("schedule 'nightly cleanup' was not paused; next fire 20")
    assert text.endswith(" UTC\n")
    assert run("pause-schedule", "hourly", "--db", db, "--json").json() == (
        queue.schedules()[0].as_dict()
    )
    assert queue.schedules()[0].paused


def test_schedule_errors_are_one_line_with_exit_code_2(
    run: Callable[..., Result], db: str, scheduled: tuple[DurableQueue, FakeClock], tmp_path: Path
) -> None:
    queue, _ = scheduled
    before = queue.schedules()
    for verb in ("pause-schedule", "resume-schedule", "trigger-schedule"):
        assert_one_line_error(
            run(verb, "nope", "--db", db),
            "no schedule named 'nope'",
            "known: 'hourly', 'nightly cleanup'",
        )
        assert_one_line_error(run(verb, "Hourly", "--db", db), "no schedule named 'Hourly'")
        assert_one_line_error(run(verb, "x" * 10_240, "--db", db), "(10240 characters)")
        assert_one_line_error(run(verb, "--db", db), "NAME")
    assert queue.schedules() == before
    assert len(queue.list()) == 1  # the fire of the fixture; nothing triggered

    empty = str(tmp_path / "empty.db")
    DurableQueue(empty).close()
    assert_one_line_error(
        run("trigger-schedule", "nightly", "--db", empty),
        "no schedule named 'nightly'",
        "none is stored yet",
    )
    assert_one_line_error(
        run("schedules", "--db", str(tmp_path / "missing.db")), "no database file at"
    )
    assert_one_line_error(run("schedules", "extra", "--db", db), "unrecognized arguments")


def test_help_lists_the_schedule_commands(run: Callable[..., Result]) -> None:
    result = run("--help")
    for verb in ("schedules", "pause-schedule", "resume-schedule", "trigger-schedule"):
        assert verb in result.out
    assert "--import" in run("trigger-schedule", "--help").out


# -- job data never drives the terminal ---------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run the real ``jobq`` command; its raw output bytes."""
    done = subprocess.run(
        [sys.executable, "-m", "jobq.cli", *args],
        cwd=ROOT,
        capture_output=True,
        timeout=DEADLINE,
        check=False,
    )
    assert done.returncode == 0, done
    return done


def test_list_stats_and_retry_print_job_data_escaped(db: str) -> None:
    from tests.integration import _cli_hostile_tasks as hostile

    queue = DurableQueue(db)
    try:
        hostile.register(queue)
        job_id = queue.get_task(hostile.NAME).enqueue().id
        queue.run_until_empty(queues=[hostile.QUEUE])
        assert queue.get(job_id).status is JobStatus.FAILED
    finally:
        queue.close()

    listing = assert_terminal_safe(_cli("list", "--db", db).stdout)
    assert "hostile\\x1b[2J\\x9b0m" in listing  # the task's name
    assert "q\\x1b]0;title\\x07" in listing  # its queue
    assert "RuntimeError: \\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b]0;pwned" in listing  # its error
    stats = assert_terminal_safe(_cli("stats", "--db", db).stdout)
    assert "q\\x1b]0;title\\x07" in stats
    retried = assert_terminal_safe(_cli("retry", str(job_id), "--db", db).stdout)
    assert (
        retried == f"job {job_id} will run again (hostile\\x1b[2J\\x9b0m, queue "
        "q\\x1b]0;title\\x07)\n"
    )
    # JSON escapes them its own way, and loses nothing.
    as_json = _cli("list", "--db", db, "--json").stdout
    assert_terminal_safe(as_json)
    [job] = json.loads(as_json)["jobs"]
    assert (job["name"], job["queue"]) == (hostile.NAME, hostile.QUEUE)
    assert job["error"]["message"] == hostile.HOSTILE


def test_worker_logs_job_data_escaped(tmp_path: Path, db: str) -> None:
    from tests.integration import _cli_hostile_tasks as hostile

    queue = DurableQueue(db)
    hostile.register(queue)
    args = [
        sys.executable,
        "-m",
        "jobq.cli",
        "worker",
        "--db",
        db,
        "--import",
        "tests.integration._cli_hostile_tasks",
        "--concurrency",
        "1",
        "--grace",
        "5",
    ]
    try:
        with worker_process(args, tmp_path) as (child, log):
            job_id = queue.get_task(hostile.NAME).enqueue().id
            wait_for(lambda: queue.get(job_id).status is JobStatus.FAILED, "the job failed")
            # Its last line is logged after the failure is stored: wait for it.
            wait_for(lambda: b"failed: RuntimeError" in log.read_bytes(), "the failure logged")
            child.send_signal(signal.SIGTERM)
            assert child.wait(DEADLINE) == 0, log.read_text(errors="replace")
    finally:
        queue.close()

    output = assert_terminal_safe(log.read_bytes())
    escaped = hostile.HOSTILE.encode("unicode_escape").decode()  # as terminal_safe writes it
    assert f"job {job_id} hostile\\x1b[2J\\x9b0m will retry: RuntimeError: " in output
    assert f"job {job_id} hostile\\x1b[2J\\x9b0m failed: RuntimeError: " in output
    assert output.count(f"job {job_id} hostile\\x1b[2J\\x9b0m failed: ") == 1  # not twice
    assert f"job {job_id} hostile\\x1b[2J\\x9b0m started (attempt 1/" in output  # at INFO
    assert "queues q\\x1b]0;title\\x07 of" in output  # the start line
    assert f"the receiver answered {escaped}" in output  # the task's own log line
    # The traceback keeps its lines, indented: the message's second line cannot pass
    # for a record of its own.
    assert "\n  Traceback (most recent call last):\n" in output
    in_traceback = escaped.replace("\\n", "\n  ")
    assert f"\n  RuntimeError: {in_traceback}\n" in output
    assert not [line for line in output.splitlines() if line.startswith("2026-01-01")]


@pytest.mark.parametrize(
    ("text", "one_line", "lines"),
    [
        ("\x1b[2J", "\\x1b[2J", "\\x1b[2J"),
        ("a\x07\x00\x7f", "a\\x07\\x00\\x7f", "a\\x07\\x00\\x7f"),
        ("\x9b1m\x85", "\\x9b1m\\x85", "\\x9b1m\\x85"),  # C1: CSI and NEL
        ("a\r\nb\tc", "a\\r\\nb\\tc", "a\\r\nb\tc"),
        ("abc\u202efdp.exe", "abc\\u202efdp.exe", "abc\\u202efdp.exe"),
        ("é ü 日本 \\x1b", "é ü 日本 \\x1b", "é ü 日本 \\x1b"),  # kept as they are
    ],
)
def test_terminal_safe(text: str, one_line: str, lines: str) -> None:
    assert terminal_safe(text) == one_line
    assert terminal_safe(text, keep_lines=True) == lines
    assert terminal_safe(one_line) == one_line  # escaping twice changes nothing


def test_a_reader_that_went_away_ends_the_command_quietly(db: str) -> None:
    queue = DurableQueue(db)
    try:
        queue.task("noop")(lambda: None).enqueue()
    finally:
        queue.close()
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `jobq list | head` once head has left: every write fails
    try:
        done = subprocess.run(
            [sys.executable, "-m", "jobq.cli", "list", "--db", db],
            cwd=ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=DEADLINE,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, b"")
