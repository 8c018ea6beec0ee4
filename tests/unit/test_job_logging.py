"""Each attempt's log line on ``jobq.jobs``, with its fields in ``extra``, and the
exception passed to ``job_failed`` and ``job_retrying``: one step at a time with
``run_until_empty``, a FakeClock and a real SQLite file."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobq import DurableQueue, JobStatus, signals
from jobq.testing import FakeClock
from jobq.worker.execute import claim
from jobq.worker.incidents import Incident
from jobq.worker.services import LeaseRescuer

START = 1_800_000_000.0
BACKOFF = 10.0
FIELDS = ("job_id", "task", "queue", "attempt", "max_attempts", "duration")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def queue(tmp_path: Path, clock: FakeClock) -> Iterator[DurableQueue]:
    made = DurableQueue(tmp_path / "jobs.db", clock=clock, lease_seconds=30.0)
    yield made
    made.close()


@pytest.fixture
def job_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="jobq.jobs")
    return caplog


def jobs_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "jobq.jobs"]


def fields(record: logging.LogRecord, *names: str) -> dict[str, Any]:
    return {name: getattr(record, name) for name in (*FIELDS, *names)}


def failing_three_times(queue: DurableQueue, raised: list[BaseException]) -> Any:
    @queue.task("reports.build", queue="slow", max_attempts=3, backoff=BACKOFF)
    def build_report(report: int) -> None:
        error = LookupError(f"report {report} has no rows")
        raised.append(error)
        raise error

    return build_report


def test_a_retried_attempt_is_a_warning_with_the_jobs_fields(
    queue: DurableQueue, clock: FakeClock, job_log: pytest.LogCaptureFixture
) -> None:
    raised: list[BaseException] = []
    job = failing_three_times(queue, raised).enqueue(5)
    assert queue.run_until_empty() == 1

    started, retry = jobs_records(job_log)
    assert (started.levelno, started.getMessage()) == (
        logging.DEBUG,
        f"job {job.id} reports.build started (attempt 1/3)",
    )
    assert retry.levelno == logging.WARNING
    assert retry.getMessage() == (
        f"job {job.id} reports.build will retry: LookupError: report 5 has no rows "
        "(attempt 1/3; again in 10 s)"
    )
    assert retry.exc_info is None  # the traceback comes with the final failure
    got = fields(retry, "retry_at", "retry_in")
    assert got.pop("duration") >= 0.0
    assert got == {
        "job_id": job.id,
        "task": "reports.build",
        "queue": "slow",
        "attempt": 1,
        "max_attempts": 3,
        "retry_at": START + BACKOFF,
        "retry_in": BACKOFF,
    }


def test_a_final_failure_is_an_error_with_the_real_exception(
    queue: DurableQueue, clock: FakeClock, job_log: pytest.LogCaptureFixture
) -> None:
    raised: list[BaseException] = []
    job = failing_three_times(queue, raised).enqueue(5)
    for _ in range(3):
        assert queue.run_until_empty() == 1
        clock.advance(BACKOFF)
    assert queue.get(job.id).status is JobStatus.FAILED

    levels = [r.levelno for r in jobs_records(job_log) if r.levelno > logging.DEBUG]
    assert levels == [logging.WARNING, logging.WARNING, logging.ERROR]
    final = jobs_records(job_log)[-1]
    assert final.getMessage() == (
        f"job {job.id} reports.build failed: LookupError: report 5 has no rows (attempt 3/3)"
    )
    assert final.exc_info is not None
    assert final.exc_info[1] is raised[-1]  # the object the task raised, not a copy
    frames = traceback.extract_tb(final.exc_info[2])
    assert frames[-1].name == "build_report"
    got = fields(final)
    assert isinstance(got.pop("duration"), float)
    assert got == {
        "job_id": job.id,
        "task": "reports.build",
        "queue": "slow",
        "attempt": 3,
        "max_attempts": 3,
    }
    assert not hasattr(final, "retry_at")


def test_a_completed_job_is_a_debug_line_with_its_duration(
    queue: DurableQueue, job_log: pytest.LogCaptureFixture
) -> None:
    @queue.task("ping")
    def ping() -> str:
        return "pong"

    job = ping.enqueue()
    queue.run_until_empty()
    completed = jobs_records(job_log)[-1]
    assert completed.levelno == logging.DEBUG
    assert completed.getMessage().startswith(f"job {job.id} ping completed in ")
    assert completed.duration >= 0.0  # type: ignore[attr-defined]
    assert (completed.job_id, completed.attempt) == (job.id, 1)  # type: ignore[attr-defined]


def test_the_signals_carry_the_exception_and_the_duration(
    queue: DurableQueue, clock: FakeClock
) -> None:
    raised: list[BaseException] = []
    task = failing_three_times(queue, raised)
    heard: list[tuple[str, dict[str, Any]]] = []

    def retrying(sender: object, **kwargs: Any) -> None:
        heard.append(("retrying", kwargs))

    def failed(sender: object, **kwargs: Any) -> None:
        heard.append(("failed", kwargs))

    with (
        signals.job_retrying.connected_to(retrying, sender=queue),
        signals.job_failed.connected_to(failed, sender=queue),
    ):
        task.enqueue(1)
        for _ in range(3):
            queue.run_until_empty()
            clock.advance(BACKOFF)

    assert [kind for kind, _ in heard] == ["retrying", "retrying", "failed"]
    for (_, kwargs), exception in zip(heard, raised, strict=True):
        assert kwargs["exception"] is exception
        assert exception.__traceback__ is not None
        assert kwargs["error"].type == "LookupError"  # the stored JobError, as before
        assert kwargs["duration"] >= 0.0
    assert set(heard[0][1]) == {"job", "error", "run_at", "exception", "duration"}
    assert set(heard[2][1]) == {"job", "error", "exception", "duration"}


def test_a_lease_rescue_is_one_line_with_the_ids(
    queue: DurableQueue, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    queue.task("noop")(lambda: None)
    ids = [queue.enqueue("noop").id for _ in range(2)]
    claim(queue, ["default"], owner="dead worker", now=clock.now(), limit=2)
    clock.advance(31.0)
    rescuer = LeaseRescuer(queue, next_run=clock.now())
    caplog.set_level(logging.INFO, logger="jobq.worker")

    rescuer.run_once(clock.now())
    rescuer.run_once(clock.now())  # nothing left to rescue: no line

    (line,) = [r for r in caplog.records if r.name == "jobq.worker"]
    assert line.levelno == logging.WARNING
    assert "released 2 jobs whose worker stopped renewing its lease" in line.getMessage()
    assert line.count == 2  # type: ignore[attr-defined]
    assert sorted(line.requeued) == ids  # type: ignore[attr-defined]
    assert (line.failed, line.cancelled) == ([], [])  # type: ignore[attr-defined]


def test_an_outage_is_logged_once_then_reminded_then_recovered(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("jobq.worker")
    outage = Incident(logger, "pool1: database operation", reminder=300.0, clock=clock.now)
    caplog.set_level(logging.INFO, logger="jobq.worker")

    outage.succeeded()  # all well: nothing to say
    for _ in range(100):  # a poll every 5 s for 500 s
        outage.failed(OSError("disk I/O error"))
        clock.advance(5.0)
    outage.succeeded()
    outage.succeeded()

    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("ERROR", "pool1: database operation failed; retrying quietly until it works again"),
        (
            "WARNING",
            "pool1: database operation still failing after 61 tries in 300 s: "
            "OSError: disk I/O error",
        ),
        ("WARNING", "pool1: database operation recovered after 100 failures in 500.0 s"),
    ]
    first = caplog.records[0]
    assert first.exc_info is not None
    assert isinstance(first.exc_info[1], OSError)
    assert caplog.records[-1].failures == 100  # type: ignore[attr-defined]
