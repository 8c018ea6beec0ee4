"""Tasks for the command-line tests: ``jobq worker --import tests.integration._cli_tasks``.

Imported by the worker, the module registers its tasks on ``jobq.default_queue()``
as the ``jobq --help`` text tells users to; a test registers the same functions
on its own queue with :func:`register` to enqueue them. Tasks report to the
test through files in ``$JOBQ_CLI_TEST_DIR``.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import jobq

HARD_LIMIT = 60.0
"""Seconds a slow task runs at most, whatever it was asked."""


def _folder() -> Path:
    return Path(os.environ["JOBQ_CLI_TEST_DIR"])


def record(n: int) -> int:
    """Touch ``record-<job id>`` and return ``n``."""
    (_folder() / f"record-{jobq.current_job().id}").touch()
    return n


def slow(seconds: float) -> str:
    """Touch ``started-<job id>``, sleep ``seconds``, touch ``done-<job id>``."""
    job_id = jobq.current_job().id
    (_folder() / f"started-{job_id}").touch()
    time.sleep(min(seconds, HARD_LIMIT))
    (_folder() / f"done-{job_id}").touch()
    return "finished"


def register(queue: jobq.DurableQueue) -> None:
    """Register ``record`` and ``slow`` on ``queue``."""
    queue.task("record")(record)
    queue.task("slow", priority=10)(slow)


# A test imports this module with no default queue, then registers on its own.
with contextlib.suppress(jobq.NotConfigured):
    register(jobq.default_queue())
