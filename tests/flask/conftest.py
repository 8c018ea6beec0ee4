"""Fixtures for the Flask extension: apps on tmp_path files whose states are always closed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import jobq
from flask_jobq import JobQ, state_for

AppFactory = Callable[..., Flask]


@pytest.fixture
def ext() -> JobQ:
    return JobQ()


@pytest.fixture
def make_app(tmp_path: Path, ext: JobQ) -> Iterator[AppFactory]:
    """``make_app(name="a", **config)``: a Flask app initialised with ``ext`` whose
    instance folder is under tmp_path; every one is closed after the test."""
    apps: list[Flask] = []

    def make(name: str = "app", *, extension: JobQ | None = None, **config: Any) -> Flask:
        app = Flask(name, instance_path=str(tmp_path / f"instance-{name}"))
        app.config.update(TESTING=True, JOBQ_CONCURRENCY=2, **config)
        (extension or ext).init_app(app)
        apps.append(app)
        return app

    yield make
    for app in apps:
        if "jobq" in app.extensions:
            state_for(app).close(timeout=5.0)
    jobq.configure(None)
