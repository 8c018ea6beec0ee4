"""What a real worker pool logs about storage outages and stuck threads: once per
incident, not per poll."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from jobq import DurableQueue, JobStatus, TaskTimeout, signals
from jobq.testing import FakeClock
from jobq.worker import pool as pool_module
from tests.helpers import BOUNDED_WAIT, MakeQueue, eventually


@pytest.fixture
def queue(make_queue: MakeQueue) -> DurableQueue:
    return make_queue(poll_interval=0.001)


def test_a_storage_outage_while_polling_is_logged_once(
    queue: DurableQueue, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "_RETRY_WAIT_FIRST", 0.0001)  # retry at once
    caplog.set_level(logging.INFO, logger="jobq.worker")
    outage_clock = FakeClock(0.0)
    broken = threading.Event()
    failures = 0

    def failing(real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            nonlocal failures
            if broken.is_set():
                failures += 1
                outage_clock.advance(60.0)  # each poll a minute later, as far as the log knows
                raise OSError("database is unreachable")
            return real(*args, **kwargs)

        return call

    # Both ways a pool asks for work: the poll, and the claim of its upkeep tick or
    # of a wake-up (which skips the poll), so no call succeeds during the outage.
    monkeypatch.setattr(queue.storage, "has_runnable", failing(queue.storage.has_runnable))
    monkeypatch.setattr(queue.storage, "claim", failing(queue.storage.claim))
    pool = queue.start_workers(concurrency=1)
    try:
        pool.outage.clock = outage_clock.now
        broken.set()
        eventually(lambda: failures >= 12)
        broken.clear()
        eventually(lambda: any("recovered" in r.getMessage() for r in caplog.records))
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)

    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "jobq.worker"]
    what = f"jobq worker pool {pool.name}: database operation"
    assert lines[0] == ("ERROR", f"{what} failed; retrying quietly until it works again")
    assert caplog.records[0].exc_info is not None
    # A reminder every 5 minutes of (fake) failing time, not a line per poll.
    reminders = [message for level, message in lines[1:-1]]
    assert 2 <= len(reminders) <= failures // 5 + 1, lines
    assert all(message.startswith(f"{what} still failing after") for message in reminders)
    assert lines[-1][0] == "WARNING"
    assert lines[-1][1].startswith(f"{what} recovered after {failures} failures")


def test_a_timed_out_job_logs_its_stuck_thread_once_and_fails_with_task_timeout(
    queue: DurableQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jobq")
    release = threading.Event()

    ran: list[float] = []

    @queue.task("slow", timeout=0.05, max_attempts=1)
    def slow() -> None:
        began = time.perf_counter()
        release.wait(BOUNDED_WAIT)
        ran.append(time.perf_counter() - began)

    heard: list[dict[str, Any]] = []

    def failed(sender: object, **kwargs: Any) -> None:
        heard.append(kwargs)

    job = slow.enqueue()
    pool = queue.start_workers(concurrency=1)
    with signals.job_failed.connected_to(failed, sender=queue):
        try:
            eventually(lambda: any(a["stuck"] for a in pool.running()))
            release.set()
            eventually(lambda: queue.get(job.id).status is JobStatus.FAILED)
        finally:
            release.set()
            assert pool.stop(timeout=BOUNDED_WAIT)

    stuck = [r for r in caplog.records if "passed its timeout" in r.getMessage()]
    assert len(stuck) == 1
    assert (stuck[0].levelno, stuck[0].name) == (logging.WARNING, "jobq.worker")
    assert (stuck[0].job_id, stuck[0].task) == (job.id, "slow")  # type: ignore[attr-defined]
    assert stuck[0].worker_thread.startswith(f"jobq-{pool.name}-worker-")  # type: ignore[attr-defined]
    (final,) = [r for r in caplog.records if r.name == "jobq.jobs" and r.levelno == logging.ERROR]
    assert final.exc_info is not None
    assert isinstance(final.exc_info[1], TaskTimeout)
    assert final.duration >= ran[0]  # type: ignore[attr-defined]  # the thread's real time
    (kwargs,) = heard
    assert isinstance(kwargs["exception"], TaskTimeout)
    assert kwargs["exception"] is final.exc_info[1]
