"""Gauges read from the database at scrape time: :class:`JobqCollector`.

Every process reads the same rows, so whichever gunicorn process answers a scrape
gives the same values. ``queue.stats()`` reads the maintained count rows (one row
per queue and status), an index seek per queue for the due jobs and the paused
queues: cheap at any number of jobs.

Rule: imports prometheus_client and :mod:`jobq.job`; reaches the queue through
:class:`GaugeSource` only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sized
from typing import Any, Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..job import JobStatus

logger = logging.getLogger("jobq.metrics")

GAUGE_NAMES = (
    "jobq_database_up",
    "jobq_jobs",
    "jobq_jobs_scheduled",
    "jobq_oldest_runnable_age_seconds",
    "jobq_queue_oldest_runnable_age_seconds",
    "jobq_queue_paused",
    "jobq_workers_live",
)
"""The gauges :class:`JobqCollector` reads (``jobq_workers_live`` only when the queue
has a worker registry, ``queue.workers()``)."""


class GaugeSource(Protocol):
    """What the collector reads of a :class:`jobq.DurableQueue`."""

    def stats(self) -> Any:
        """A :class:`jobq.storage.base.Stats` snapshot."""
        ...

    def oldest_runnable_age(self) -> float:
        """Seconds the oldest runnable job of an unpaused queue has waited."""
        ...


class JobqCollector(Collector):
    """A prometheus_client collector of the queue's gauges, read at each scrape.

    Register it in any registry: ``registry.register(JobqCollector(queue))``.
    With ``counters`` (a :class:`~jobq.metrics.JobMetrics`), its counters and
    histograms are yielded too; leave it None in multiprocess mode, where a
    :class:`~prometheus_client.multiprocess.MultiProcessCollector` yields them
    summed over processes.

    When the database does not answer, ``jobq_database_up`` is 0 and the other
    gauges are left out of that scrape (the error is logged at WARNING on
    ``jobq.metrics``); the scrape itself succeeds.
    """

    def __init__(self, queue: GaugeSource, *, counters: Any = None) -> None:
        self.queue = queue
        self.counters = counters

    def describe(self) -> list[Metric]:
        """Nothing: the gauges depend on the data, so registering never reads it."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The gauges now, then the counters when given."""
        if self.counters is not None:
            yield from self.counters.registry.collect()
        up = GaugeMetricFamily("jobq_database_up", "1 when the database answered this scrape.")
        try:
            gauges = list(self._gauges())
        except Exception:
            logger.warning("jobq: metrics: the database did not answer", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from gauges

    def _gauges(self) -> Iterator[Metric]:
        stats = self.queue.stats()
        jobs = GaugeMetricFamily(
            "jobq_jobs", "Jobs by queue and status.", labels=["queue", "status"]
        )
        scheduled = GaugeMetricFamily(
            "jobq_jobs_scheduled", "Pending jobs whose run_at is in the future.", labels=["queue"]
        )
        ages = GaugeMetricFamily(
            "jobq_queue_oldest_runnable_age_seconds",
            "Seconds the oldest runnable job of the queue has waited since it became due.",
            labels=["queue"],
        )
        for name, queue_stats in sorted(stats.queues.items()):
            for status in JobStatus:
                jobs.add_metric([name, status.value], queue_stats.counts.get(status, 0))
            scheduled.add_metric([name], queue_stats.scheduled)
            ages.add_metric([name], queue_stats.oldest_runnable_age)
        paused = GaugeMetricFamily(
            "jobq_queue_paused", "1 for each paused queue.", labels=["queue"]
        )
        for name in sorted(stats.paused):
            paused.add_metric([name], 1)
        oldest = GaugeMetricFamily(
            "jobq_oldest_runnable_age_seconds",
            "Seconds the oldest runnable job of any queue that is not paused has waited.",
        )
        oldest.add_metric([], self.queue.oldest_runnable_age())
        yield from (jobs, scheduled, ages, paused, oldest)
        live = live_workers(self.queue)
        if live is not None:
            workers = GaugeMetricFamily(
                "jobq_workers_live", "Worker pools whose heartbeat is recent, on every host."
            )
            workers.add_metric([], live)
            yield workers


def live_workers(queue: object) -> int | None:
    """How many worker pools are alive, from the queue's worker registry
    (``queue.workers()``, a sized collection of the live pools), or None when the
    queue keeps no registry."""
    workers = getattr(queue, "workers", None)
    if workers is None:
        return None
    found = workers()
    return len(found) if isinstance(found, Sized) else sum(1 for _ in found)
