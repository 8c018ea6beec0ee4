"""Fixtures for the Flask extension: apps on tmp_path files whose states are always
closed, and the monitor's apps, client and queue that several modules share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import jobq
from flask_jobq import JobQ, state_for
from flask_jobq.views import BLUEPRINT_NAME, register_monitor
from tests.helpers import NIGHTLY, AppFactory, Monitor


@pytest.fixture
def ext() -> JobQ:
    return JobQ()


@pytest.fixture
def make_app(tmp_path: Path, ext: JobQ) -> Iterator[AppFactory]:
    """``make_app(name="a", **config)``: a Flask app initialised with ``ext`` whose
    instance folder is under tmp_path; every one is closed after the test. It is a
    testing app (no automatic worker starts, a temporary database) unless ``config``
    says ``TESTING=False``."""
    apps: list[Flask] = []

    def make(name: str = "app", *, extension: JobQ | None = None, **config: Any) -> Flask:
        app = Flask(name, instance_path=str(tmp_path / f"instance-{name}"))
        app.config.update({"TESTING": True, "JOBQ_CONCURRENCY": 2, **config})
        (extension or ext).init_app(app)
        apps.append(app)
        return app

    yield make
    for app in apps:
        if "jobq" in app.extensions:
            state_for(app).close(timeout=5.0)
    jobq.configure(None)


# -- the monitor ------------------------------------------------------------------------


def _fail() -> None:
    raise jobq.Fail("it went wrong")


def _report(n: int) -> dict[str, int]:
    job = jobq.current_job()
    assert job is not None
    job.set_progress({"done": n})
    return {"n": n}


@pytest.fixture
def monitor_app(make_app: AppFactory) -> Callable[..., Flask]:
    """``monitor_app(name, **config)``: a testing app with the monitor mounted; its
    workers start only when a test asks (``JOBQ_START_WORKERS`` False by default).
    Its tasks: ``add(a, b)``, ``fail()`` and ``report(n)`` (on the ``other`` queue)."""

    def make(name: str = "app", **config: Any) -> Flask:
        config.setdefault("JOBQ_START_WORKERS", False)
        app = make_app(name, **config)
        if BLUEPRINT_NAME not in app.blueprints:  # once init_app mounts it itself
            register_monitor(app)
        queue = state_for(app).queue
        queue.task("add")(lambda a, b: a + b)
        queue.task("fail")(_fail)
        queue.task("report", queue="other")(_report)
        return app

    return make


@pytest.fixture
def app(monitor_app: Callable[..., Flask]) -> Flask:
    return monitor_app()


@pytest.fixture
def monitor(app: Flask) -> Monitor:
    return Monitor(app)


@pytest.fixture
def queue(app: Flask) -> jobq.DurableQueue:
    return state_for(app).queue


@pytest.fixture
def scheduled(queue: jobq.DurableQueue) -> jobq.DurableQueue:
    """The app's queue with two stored schedules: ``hourly-add`` (every hour) and
    ``nightly report/eu`` (cron, Paris time, on the ``other`` queue's task)."""
    queue.schedule("add", every=3600, name="hourly-add", args=[1, 2])
    queue.schedule(
        "report", cron="0 3 * * *", tz="Europe/Paris", name=NIGHTLY, kwargs={"n": 7}, missed="skip"
    )
    assert queue.fire_due_schedules() == []  # stored, first fires still ahead
    return queue
