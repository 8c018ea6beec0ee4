"""Tasks that only the worker process of tests/integration/test_enqueue_by_name.py
imports (``jobq worker --import tests.integration._by_name_tasks``): the test's own
process enqueues them by name, without them."""

from __future__ import annotations

import contextlib

import jobq


def build(account_id: int, *, month: str) -> str:
    """A report's name."""
    return f"report-{account_id}-{month}"


def fragile(text: str) -> int:
    """Raises TypeError from inside the task: an ordinary failure, retried."""
    return text + 1  # type: ignore[operator,no-any-return]


with contextlib.suppress(jobq.NotConfigured):
    queue = jobq.default_queue()
    queue.task("reports.build")(build)
    queue.task("reports.fragile", max_attempts=2, backoff=0)(fragile)
