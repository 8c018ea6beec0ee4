"""jobq.metrics on a real SQLite queue driven by a FakeClock: each counter and
histogram counts what the signals report, durations come from the queue's clock,
the collector works in a plain registry, and the core never imports
prometheus_client until asked."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import jobq
from jobq.testing import FakeClock
from jobq.worker.services import LeaseRescuer

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry

from jobq.metrics import JobMetrics, JobqCollector, connect_metrics, render_metrics

START = 1_800_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def queue(tmp_path: Path, clock: FakeClock) -> Iterator[jobq.DurableQueue]:
    durable = jobq.DurableQueue(tmp_path / "jobq.db", clock=clock, lease_seconds=30)
    yield durable
    durable.close()


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_counters_and_histograms_follow_each_job_with_times_from_the_queue_clock(
    queue: jobq.DurableQueue, clock: FakeClock
) -> None:
    metrics = JobMetrics()
    registry = metrics.registry
    attempts: list[int] = []

    @queue.task(name="slow")
    def slow() -> None:
        clock.advance(2.5)

    @queue.task(name="flaky", max_attempts=2, backoff=0)
    def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first attempt fails")

    @queue.task(name="broken", max_attempts=1)
    def broken() -> None:
        raise RuntimeError("always")

    connection = connect_metrics(queue, metrics=metrics)
    queue.enqueue_job(slow.new_job(slow.encode((), {})), delay=10)
    queue.enqueue(flaky)
    queue.enqueue(broken)
    clock.advance(14)  # slow became due 4 s ago; the others were enqueued 14 s ago
    queue.run_until_empty()
    queue.run_until_empty()  # flaky's retry
    connection.disconnect()
    queue.enqueue(slow)  # not counted any more

    slow_labels = {"task": "slow", "queue": "default"}
    assert _value(registry, "jobq_jobs_enqueued_total", **slow_labels) == 1
    assert _value(registry, "jobq_jobs_completed_total", **slow_labels) == 1
    assert _value(registry, "jobq_job_run_seconds_sum", **slow_labels) == 2.5
    assert _value(registry, "jobq_job_wait_seconds_sum", **slow_labels) == 4.0
    flaky_labels = {"task": "flaky", "queue": "default"}
    assert _value(registry, "jobq_jobs_started_total", **flaky_labels) == 2
    assert _value(registry, "jobq_jobs_retried_total", **flaky_labels) == 1
    assert _value(registry, "jobq_jobs_completed_total", **flaky_labels) == 1
    assert _value(registry, "jobq_job_run_seconds_count", **flaky_labels) == 2
    broken_labels = {"task": "broken", "queue": "default"}
    assert _value(registry, "jobq_jobs_failed_total", **broken_labels) == 1
    assert _value(registry, "jobq_jobs_completed_total", **broken_labels) == 0


def test_rescued_jobs_are_counted_by_task_and_queue_and_final_ones_as_failed(
    queue: jobq.DurableQueue, clock: FakeClock
) -> None:
    metrics = JobMetrics()

    @queue.task(name="twice", max_attempts=2, queue="mail")
    def twice() -> None: ...

    @queue.task(name="once", max_attempts=1, queue="mail")
    def once() -> None: ...

    connection = connect_metrics(queue, metrics=metrics)
    queue.enqueue(twice)
    queue.enqueue(once)
    queue.storage.claim(["mail"], owner="dead", now=clock.now(), lease_seconds=30, limit=2)
    clock.advance(31)
    LeaseRescuer(queue, next_run=0).run_once(clock.now())
    connection.disconnect()

    registry = metrics.registry
    assert _value(registry, "jobq_jobs_rescued_total", task="twice", queue="mail") == 1
    assert _value(registry, "jobq_jobs_rescued_total", task="once", queue="mail") == 1
    assert _value(registry, "jobq_jobs_failed_total", task="once", queue="mail") == 1
    assert _value(registry, "jobq_jobs_failed_total", task="twice", queue="mail") == 0


def test_the_collector_reads_the_gauges_from_the_database_in_a_plain_registry(
    queue: jobq.DurableQueue, clock: FakeClock
) -> None:
    @queue.task(name="later", queue="reports")
    def later() -> None: ...

    queue.enqueue(later)
    queue.enqueue_job(later.new_job(later.encode((), {})), delay=60)
    clock.advance(7)
    queue.pause("reports")
    registry = CollectorRegistry()
    registry.register(JobqCollector(queue))

    assert registry.get_sample_value("jobq_database_up") == 1
    assert registry.get_sample_value("jobq_jobs", {"queue": "reports", "status": "pending"}) == 2
    assert registry.get_sample_value("jobq_jobs_scheduled", {"queue": "reports"}) == 1
    assert registry.get_sample_value("jobq_queue_paused", {"queue": "reports"}) == 1
    age = registry.get_sample_value("jobq_queue_oldest_runnable_age_seconds", {"queue": "reports"})
    assert age == 7
    assert registry.get_sample_value("jobq_oldest_runnable_age_seconds") == 0  # paused
    has_registry = hasattr(queue, "workers")
    assert (registry.get_sample_value("jobq_workers_live") is not None) is has_registry


def test_a_scrape_says_the_database_is_down_instead_of_failing(queue: jobq.DurableQueue) -> None:
    queue.close()
    text = render_metrics(queue, counters=JobMetrics()).decode()
    assert "jobq_database_up 0.0" in text
    assert "jobq_jobs{" not in text


def test_importing_jobq_and_the_flask_extension_never_imports_prometheus_client() -> None:
    code = (
        "import sys, jobq, flask_jobq, jobq.cli; "
        "assert 'prometheus_client' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
