"""``jobq worker --health-port 0 --metrics``: a real worker process answers a Prometheus
scrape at ``/metrics`` on its health check's port, with the jobs it ran counted and the
database's gauges."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from jobq import DurableQueue
from jobq.cli.run import run_worker
from jobq.errors import CommandError
from tests.helpers import wait_for
from tests.integration.test_worker_health import DEADLINE, health_url, project, worker

parser = pytest.importorskip("prometheus_client.parser")

__all__ = ["project"]  # the fixture, imported for pytest


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=DEADLINE) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_worker_serves_its_counters_and_the_gauges_next_to_its_health_check(
    project: tuple[Path, str, DurableQueue],
) -> None:
    folder, package, queue = project
    labels = (("queue", "reports"), ("task", "report"))
    with worker(folder, package, "--metrics") as (child, log):
        url = health_url(child, log).removesuffix("/health") + "/metrics"
        for _ in range(3):
            queue.enqueue("report")

        def counted() -> bool:
            return _scrape(url).get(("jobq_jobs_completed_total", labels)) == 3

        wait_for(counted, "the worker counted 3 jobs", DEADLINE, interval=0.05)
        samples = _scrape(url)
    assert samples[("jobq_jobs_started_total", labels)] == 3
    assert samples[("jobq_job_run_seconds_count", labels)] == 3
    assert samples[("jobq_jobs", (("queue", "reports"), ("status", "completed")))] == 3


def test_metrics_without_a_health_port_is_refused(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "jobs.db")
    try:
        with pytest.raises(CommandError, match="--health-port"):
            run_worker(queue, metrics=True)
    finally:
        queue.close()
