"""Counters and histograms of the jobs this process handled, fed by :mod:`jobq.signals`.

Durations are read from the sending queue's own clock (``queue.clock.now()``), the
one that stamps jobs, so a test driving a :class:`jobq.testing.FakeClock` sees
exact values. The run time of an attempt runs from ``job_started`` (the thread
begins the task) to the signal that reports its outcome; the wait time from the
moment the job became due (``max(created_at, run_at)``) to ``job_started``.

Rule: imports prometheus_client, blinker, :mod:`jobq.signals` and :mod:`jobq.job` only.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from blinker import ANY
from prometheus_client import CollectorRegistry, Counter, Histogram

from .. import signals
from ..job import Job

LABELS = ("task", "queue")
"""The labels of every counter and histogram: the job's task name and queue."""

TIME_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0)
"""Histogram bucket bounds in seconds, from 10 ms to an hour (then ``+Inf``)."""

METRIC_NAMES = (
    "jobq_jobs_enqueued_total",
    "jobq_jobs_started_total",
    "jobq_jobs_completed_total",
    "jobq_jobs_failed_total",
    "jobq_jobs_retried_total",
    "jobq_jobs_rescued_total",
    "jobq_job_run_seconds",
    "jobq_job_wait_seconds",
)
"""The counters and histograms :class:`JobMetrics` keeps, as a scrape names them."""

MAX_TRACKED_ATTEMPTS = 100_000
"""Attempts whose start time is remembered at once; beyond, the oldest are forgotten
(an attempt whose worker hung and lost its lease never reports an end)."""


class JobMetrics:
    """The counters and histograms, registered in ``registry``.

    Use one per process: :func:`job_metrics` gives the process's own. In
    multiprocess mode every instance writes to the same per-process files, so
    two instances in one process would count twice. ``registry`` defaults to a
    new :class:`~prometheus_client.CollectorRegistry` of its own (not the global
    ``REGISTRY``, which a multiprocess scrape would export a second time).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        """Where the metrics are registered."""

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, LABELS, registry=self.registry)

        def histogram(name: str, doc: str) -> Histogram:
            return Histogram(name, doc, LABELS, registry=self.registry, buckets=TIME_BUCKETS)

        self.enqueued = counter("jobq_jobs_enqueued", "Jobs stored (new jobs only).")
        self.started = counter("jobq_jobs_started", "Attempts a worker began.")
        self.completed = counter("jobq_jobs_completed", "Jobs that completed.")
        self.failed = counter(
            "jobq_jobs_failed",
            "Jobs that ended failed for good (including lease expiries with no attempt left).",
        )
        self.retried = counter("jobq_jobs_retried", "Attempts that failed and will run again.")
        self.rescued = counter(
            "jobq_jobs_rescued", "Jobs released because their worker stopped renewing the lease."
        )
        self.run_seconds = histogram(
            "jobq_job_run_seconds", "Seconds an attempt ran, from its start to its outcome."
        )
        self.wait_seconds = histogram(
            "jobq_job_wait_seconds",
            "Seconds a job waited from becoming due (enqueue or run_at) to its start.",
        )


_default: JobMetrics | None = None
_default_lock = threading.Lock()


def job_metrics() -> JobMetrics:
    """This process's :class:`JobMetrics`, created on first call in a registry of its own."""
    global _default
    with _default_lock:
        if _default is None:
            _default = JobMetrics()
        return _default


class _Children:
    """One task and queue's series of every metric, looked up once: ``labels()`` takes
    a lock and checks its arguments each call, which the hot paths need not pay."""

    __slots__ = ("completed", "enqueued", "failed", "rescued", "retried", "run", "started", "wait")

    def __init__(self, metrics: JobMetrics, task: str, queue: str) -> None:
        self.enqueued = metrics.enqueued.labels(task, queue)
        self.started = metrics.started.labels(task, queue)
        self.completed = metrics.completed.labels(task, queue)
        self.failed = metrics.failed.labels(task, queue)
        self.retried = metrics.retried.labels(task, queue)
        self.rescued = metrics.rescued.labels(task, queue)
        self.run = metrics.run_seconds.labels(task, queue)
        self.wait = metrics.wait_seconds.labels(task, queue)


@dataclass
class MetricsConnection:
    """The receivers :func:`connect_metrics` connected; :meth:`disconnect` stops counting.

    :ivar metrics: the metrics they feed.
    :ivar sender: the queue they listen to, or None for every queue.
    """

    metrics: JobMetrics
    sender: Any
    _starts: dict[tuple[int, int], float] = field(default_factory=dict, repr=False)
    _receivers: list[tuple[Any, Any]] = field(default_factory=list, repr=False)
    _children: dict[tuple[str, str], _Children] = field(default_factory=dict, repr=False)

    def _of(self, task: str, queue: str) -> _Children:
        children = self._children.get((task, queue))
        if children is None:  # two threads may both build it: the same series either way
            children = self._children[(task, queue)] = _Children(self.metrics, task, queue)
        return children

    def disconnect(self) -> None:
        """Disconnect every receiver; counts so far stay. Safe to call twice."""
        for signal, receiver in self._receivers:
            signal.disconnect(receiver)
        self._receivers.clear()
        self._starts.clear()
        self._children.clear()

    def _connect(self) -> None:
        pairs = (
            (signals.job_enqueued, self._on_enqueued),
            (signals.job_started, self._on_started),
            (signals.job_succeeded, self._on_succeeded),
            (signals.job_retrying, self._on_retrying),
            (signals.job_failed, self._on_failed),
            (signals.job_cancelled, self._on_cancelled),
            (signals.job_lease_expired, self._on_lease_expired),
        )
        sender = ANY if self.sender is None else self.sender
        for signal, receiver in pairs:
            signal.connect(receiver, sender=sender, weak=False)
            self._receivers.append((signal, receiver))

    def _on_enqueued(self, sender: Any, *, job: Job, **_: Any) -> None:
        self._of(job.name, job.queue).enqueued.inc()

    def _on_started(self, sender: Any, *, job: Job, **_: Any) -> None:
        now = _now(sender)
        starts = self._starts
        if len(starts) >= MAX_TRACKED_ATTEMPTS:
            starts.pop(next(iter(starts), (0, 0)), None)
        starts[(job.id, job.attempts)] = now
        children = self._of(job.name, job.queue)
        children.started.inc()
        children.wait.observe(max(0.0, now - max(job.created_at, job.run_at)))

    def _ended(self, sender: Any, job: Job) -> _Children:
        children = self._of(job.name, job.queue)
        started = self._starts.pop((job.id, job.attempts), None)
        if started is None:
            started = job.started_at
        if started is not None:
            children.run.observe(max(0.0, _now(sender) - started))
        return children

    def _on_succeeded(self, sender: Any, *, job: Job, **_: Any) -> None:
        self._ended(sender, job).completed.inc()

    def _on_retrying(self, sender: Any, *, job: Job, **_: Any) -> None:
        self._ended(sender, job).retried.inc()

    def _on_failed(self, sender: Any, *, job: Job, **_: Any) -> None:
        self._ended(sender, job).failed.inc()

    def _on_cancelled(self, sender: Any, *, job: Job, **_: Any) -> None:
        self._ended(sender, job)

    def _on_lease_expired(
        self,
        sender: Any,
        *,
        requeued: tuple[int, ...] = (),
        failed: tuple[int, ...] = (),
        cancelled: tuple[int, ...] = (),
        **_: Any,
    ) -> None:
        # The signal carries ids only; rescues are rare, so one read per job is cheap.
        storage = getattr(sender, "storage", None)
        for job_id in (*requeued, *failed, *cancelled):
            job = None if storage is None else storage.get(job_id)
            children = (
                self._of("unknown", "unknown") if job is None else self._of(job.name, job.queue)
            )
            children.rescued.inc()
            if job_id in failed:
                children.failed.inc()


def connect_metrics(queue: Any = None, *, metrics: JobMetrics | None = None) -> MetricsConnection:
    """Count what ``queue`` (a :class:`jobq.DurableQueue`; None: every queue of this
    process) does into ``metrics`` (default :func:`job_metrics`), from now until
    :meth:`MetricsConnection.disconnect`.

    Connect once per queue and process: each connection counts every event once
    more. Workers of this process are counted; a separate ``jobq worker``
    process connects its own (``jobq worker --health-port PORT --metrics``).
    """
    connection = MetricsConnection(job_metrics() if metrics is None else metrics, queue)
    connection._connect()
    return connection


def _now(sender: Any) -> float:
    clock = getattr(sender, "clock", None)
    return time.time() if clock is None else float(clock.now())
