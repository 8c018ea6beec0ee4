"""One scrape in the Prometheus text format: :func:`render_metrics`.

Rule: imports prometheus_client and the package's own modules.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from .counters import job_metrics
from .gauges import GaugeSource, JobqCollector

__all__ = ["CONTENT_TYPE", "is_multiprocess", "render_metrics"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The environment variable that turns on prometheus_client's multiprocess mode."""


def is_multiprocess() -> bool:
    """True when ``PROMETHEUS_MULTIPROC_DIR`` is set: counters are kept in per-process
    files in that folder and a scrape sums them. It must be set before
    prometheus_client is first imported (in the shell that starts gunicorn)."""
    return bool(os.environ.get(MULTIPROC_ENV))


def render_metrics(queue: GaugeSource, *, counters: Any = None) -> bytes:
    """A scrape of ``queue``'s gauges and the counters, as :data:`CONTENT_TYPE` text.

    In multiprocess mode the counters are every process's, summed over the files
    of ``PROMETHEUS_MULTIPROC_DIR`` (dead processes' counts included); otherwise
    those of ``counters`` (default: :func:`~jobq.metrics.job_metrics`, this
    process's). The gauges are read from the database now.
    """
    registry = CollectorRegistry()
    if is_multiprocess():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(JobqCollector(queue))
    else:
        registry.register(JobqCollector(queue, counters=counters or job_metrics()))
    return generate_latest(registry)
