"""The app the browser tests serve: a Flask app with the jobq extension on a real SQLite
file, real worker threads, and a few tasks; and the queue module a real
``jobq worker`` child process runs (:data:`child_queue`, its own queue ``child``)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from flask import Flask

import jobq
from flask_jobq import JobQ

CHILD_LEASE_SECONDS = 2.0
"""The child worker's lease: a killed one leaves the registry this long after its
last heartbeat."""

release = threading.Event()
"""Set to let the ``hold`` task return."""


def add(a: int, b: int) -> int:
    return a + b


def explode(reason: str) -> None:
    raise RuntimeError(f"the widget broke: {reason}")


def flaky(n: int) -> int:
    """Fails until the file ``$JOBQ_BROWSER_DIR/fixed`` exists."""
    if not (Path(os.environ["JOBQ_BROWSER_DIR"]) / "fixed").exists():
        raise RuntimeError(f"not fixed yet ({n})")
    return n


def echo(text: str) -> str:
    return text


def hold() -> None:
    release.wait(30)


def hold_until_released() -> None:
    """Runs until the file ``$JOBQ_BROWSER_DIR/released`` exists (at most 60 s)."""
    flag = Path(os.environ["JOBQ_BROWSER_DIR"]) / "released"
    for _ in range(6000):
        if flag.exists():
            return
        threading.Event().wait(0.01)


def make_app(database: Path, **config: Any) -> Flask:
    """A production-like app (not testing: the authorisation callback decides) whose
    monitor lets every request in; workers are started by the test."""
    ext = JobQ()
    app = Flask("browser", instance_path=str(database.parent / "instance"))
    app.config.update(
        JOBQ_DATABASE=str(database),
        JOBQ_START_WORKERS=False,
        JOBQ_CONCURRENCY=4,
        JOBQ_MONITOR_AUTH=lambda: True,
        JOBQ_QUEUES=["default", "mail"],
        **config,
    )
    ext.task(name="add", max_attempts=1)(add)
    ext.task(name="explode", max_attempts=1)(explode)
    ext.task(name="flaky", max_attempts=1, queue="mail")(flaky)
    ext.task(name="echo", max_attempts=1)(echo)
    ext.task(name="hold", max_attempts=1)(hold)
    ext.task(name="hold_until_released", queue="child")(hold_until_released)
    ext.init_app(app)
    return app


def _child_queue() -> jobq.DurableQueue | None:
    database = os.environ.get("JOBQ_BROWSER_DB")
    if database is None:
        return None
    queue = jobq.DurableQueue(database, lease_seconds=CHILD_LEASE_SECONDS)
    queue.task(name="add", queue="child")(add)
    queue.task(name="hold_until_released", queue="child")(hold_until_released)
    return queue


child_queue = _child_queue()
"""``jobq worker --app tests.browser._app:child_queue`` with ``JOBQ_BROWSER_DB`` set."""
