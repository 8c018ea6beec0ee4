"""Testing a Flask app that uses jobq, as the testing guide shows it: the app's own
queue, a temporary database, no worker threads, jobs run by the test.

The first part of this module is the documented pattern, run as written."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from flask import Flask, request

from flask_jobq import JobQ
from jobq.testing import assert_enqueued
from tests.helpers import ROOT

jobq_ext = JobQ()


@jobq_ext.task()
def send_welcome(email: str) -> str:
    return f"welcome, {email}"


def create_app() -> Flask:
    app = Flask(__name__)
    jobq_ext.init_app(app)

    @app.post("/signup")
    def signup() -> dict[str, bool]:
        send_welcome.enqueue(request.form["email"])
        return {"ok": True}

    return app


@pytest.fixture
def app() -> Iterator[Flask]:
    app = create_app()
    app.config.update(TESTING=True)
    yield app
    jobq_ext.close(app)


def test_signup_enqueues_a_welcome_email(app: Flask) -> None:
    client = app.test_client()
    client.post("/signup", data={"email": "ada@example.com"})

    with app.app_context():
        queue = jobq_ext.queue
        job = assert_enqueued(queue, send_welcome, "ada@example.com")
        assert queue.run_until_empty() == 1
        assert queue.get(job.id).decoded_result() == "welcome, ada@example.com"


# -- what the pattern relies on -------------------------------------------------------


def test_the_testing_app_touched_neither_the_instance_folder_nor_started_workers(
    app: Flask,
) -> None:
    app.test_client().post("/signup", data={"email": "ada@example.com"})
    state = jobq_ext.state(app)
    where = state.queue.storage.path  # type: ignore[attr-defined]
    assert not str(where).startswith(app.instance_path)
    assert not os.path.exists(app.instance_path)  # never created
    assert state.pool is None  # a request came, and still no worker thread
    jobq_ext.close(app)
    assert not os.path.exists(where)  # the temporary database is gone with the app


def test_an_explicit_database_is_used_by_a_testing_app_too(tmp_path: os.PathLike[str]) -> None:
    app = create_app()
    app.config.update(TESTING=True, JOBQ_DATABASE=os.path.join(tmp_path, "jobs.db"))
    try:
        with app.app_context():
            send_welcome.enqueue("bob@example.com")
        assert os.path.exists(os.path.join(tmp_path, "jobs.db"))
    finally:
        jobq_ext.close(app)


def test_inline_mode_runs_the_job_before_the_request_returns() -> None:
    app = create_app()
    app.config.update(TESTING=True, JOBQ_INLINE=True)
    try:
        app.test_client().post("/signup", data={"email": "eve@example.com"})
        with app.app_context():
            [job] = jobq_ext.queue.list()
            assert job.decoded_result() == "welcome, eve@example.com"
    finally:
        jobq_ext.close(app)


def test_a_bad_setting_is_still_refused_by_init_app() -> None:
    app = Flask(__name__)
    app.config.update(TESTING=True, JOBQ_CONCURRENCY=0)
    with pytest.raises(ValueError, match="JOBQ_CONCURRENCY must be an integer >= 1"):
        JobQ(app)


def test_the_temporary_database_is_removed_when_the_process_exits() -> None:
    script = (
        "from tests.integration.flask.test_testing_pattern import create_app, jobq_ext\n"
        "app = create_app()\n"
        "app.config.update(TESTING=True)\n"
        "print(jobq_ext.state(app).queue.storage.path)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    where = done.stdout.strip()
    assert where.endswith("jobq.db")
    assert not os.path.exists(os.path.dirname(where))
