"""``jobq.current_job().log()``: lines kept with the job by a real worker pool, by
``run_until_empty`` and in inline mode, read back with ``queue.job_logs``."""

from __future__ import annotations

import threading

import pytest

import jobq
from jobq import DurableQueue, JobStatus
from jobq.defaults import JOB_LOG_LINE_CHARS
from jobq.storage.job_logs import JobLogLine
from jobq.testing import FakeClock
from tests.helpers import BOUNDED_WAIT, MakeQueue, eventually

T0 = 1_800_000_000.0


def test_a_pool_keeps_each_jobs_lines_across_its_attempts(make_queue: MakeQueue) -> None:
    clock = FakeClock(T0)
    queue = make_queue(poll_interval=0.005, clock=clock)

    @queue.task("send", max_attempts=2, backoff=0)
    def send(to: str) -> None:
        job = jobq.current_job()
        job.log(f"connecting to {to}")
        if job.attempt == 1:
            raise ConnectionError("refused")
        job.log(f"sent to {to}")

    ids = [send.enqueue(f"smtp{n}.example.com").id for n in range(8)]
    pool = queue.start_workers(concurrency=4)
    try:
        eventually(lambda: all(queue.get(i).status is JobStatus.COMPLETED for i in ids))
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)
    for n, job_id in enumerate(ids):
        host = f"smtp{n}.example.com"
        assert queue.job_logs(job_id) == [
            JobLogLine(1, 1, T0, f"connecting to {host}"),
            JobLogLine(2, 2, T0, f"connecting to {host}"),
            JobLogLine(3, 2, T0, f"sent to {host}"),
        ]


def test_a_line_is_stored_when_logged_not_when_the_attempt_ends(make_queue: MakeQueue) -> None:
    # What a worker killed mid-task leaves: the lines logged before are in the database.
    queue = make_queue(poll_interval=0.005)
    logged, release = threading.Event(), threading.Event()

    @queue.task("slow")
    def slow() -> None:
        jobq.current_job().log("step 1 of 2 done")
        logged.set()
        release.wait(BOUNDED_WAIT)

    job = slow.enqueue()
    pool = queue.start_workers(concurrency=1)
    try:
        assert logged.wait(BOUNDED_WAIT)
        assert queue.get(job.id).status is JobStatus.PROCESSING
        assert [line.message for line in queue.job_logs(job.id)] == ["step 1 of 2 done"]
    finally:
        release.set()
        assert pool.stop(timeout=BOUNDED_WAIT)


def test_run_until_empty_and_inline_mode_keep_lines(tmp_path: object) -> None:
    clock = FakeClock(T0)
    for inline in (False, True):
        queue = DurableQueue(f"{tmp_path}/jobs-{inline}.db", clock=clock, inline=inline)

        @queue.task("report")
        def report(n: int) -> int:
            jobq.current_job().log(f"report {n}: {'x' * 5000}")
            return n

        try:
            job = report.enqueue(7)
            if not inline:
                assert queue.run_until_empty() == 1
            [line] = queue.job_logs(job.id)
        finally:
            queue.close()
        assert (line.number, line.attempt, line.logged_at) == (1, 1, T0)
        assert len(line.message) == JOB_LOG_LINE_CHARS
        assert line.message.startswith("report 7: xxx")
        assert line.message.endswith("...[4035 more characters]")


def test_log_refuses_what_is_not_a_str_and_works_only_in_a_job(tmp_path: object) -> None:
    queue = DurableQueue(f"{tmp_path}/jobs.db")
    seen: list[BaseException] = []

    @queue.task("bad")
    def bad() -> None:
        try:
            jobq.current_job().log({"not": "text"})  # type: ignore[arg-type]
        except TypeError as exc:
            seen.append(exc)

    try:
        job = bad.enqueue()
        queue.run_until_empty()
        assert queue.job_logs(job.id) == []
        with pytest.raises(jobq.JobNotFound):
            queue.job_logs(job.id + 1)
    finally:
        queue.close()
    assert "must be a str, got dict" in str(seen[0])
    with pytest.raises(RuntimeError, match="outside a job"):
        jobq.current_job().log("no job here")
    # An in-memory executor's tasks are plain calls: no job, so no job log.
    with jobq.BoundedExecutor(max_workers=1) as executor:
        future = executor.submit(lambda: jobq.current_job().log("in memory"))
        with pytest.raises(RuntimeError, match="outside a job"):
            future.result(timeout=BOUNDED_WAIT)
