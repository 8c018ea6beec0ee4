"""Prometheus metrics for a :class:`jobq.DurableQueue` (the ``prometheus`` extra).

Two kinds, kept apart on purpose:

- **Counters and histograms** of what happened in this process (jobs enqueued,
  started, completed, failed, retried, rescued; run and wait times), fed by
  :mod:`jobq.signals` once :func:`connect_metrics` connects them. Across
  gunicorn processes they rely on prometheus_client's multiprocess mode
  (``PROMETHEUS_MULTIPROC_DIR``): each process writes its own file, a scrape
  sums them.
- **Gauges read from the database at scrape time** (jobs by status and queue,
  oldest runnable age, paused queues, live workers) by :class:`JobqCollector`, so
  every process answers the same.

:func:`render_metrics` builds one scrape of both in the Prometheus text format;
the Flask monitor serves it at ``<prefix>/metrics`` and ``jobq worker
--metrics-port`` on its own port.

Importing this package imports ``prometheus_client`` (``pip install
'jobq[prometheus]'``); nothing else in jobq imports it, and while no metrics are
connected the signals have no receiver, which costs nearly nothing.
"""

from __future__ import annotations

try:
    import prometheus_client  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "jobq.metrics needs prometheus_client: pip install 'jobq[prometheus]'"
    ) from exc

from .counters import METRIC_NAMES, JobMetrics, MetricsConnection, connect_metrics, job_metrics
from .exposition import CONTENT_TYPE, is_multiprocess, render_metrics
from .gauges import GAUGE_NAMES, JobqCollector

__all__ = [
    "CONTENT_TYPE",
    "GAUGE_NAMES",
    "METRIC_NAMES",
    "JobMetrics",
    "JobqCollector",
    "MetricsConnection",
    "connect_metrics",
    "is_multiprocess",
    "job_metrics",
    "render_metrics",
]
