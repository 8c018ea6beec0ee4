"""gunicorn's configuration for the metrics test, as docs/observability.md shows it:
a process that exits hands its live-gauge files back (its counters stay counted)."""

from __future__ import annotations

from typing import Any

from prometheus_client import multiprocess


def child_exit(server: Any, worker: Any) -> None:
    multiprocess.mark_process_dead(worker.pid)
