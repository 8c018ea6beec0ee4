"""The extension's settings: one typed object read from app.config, whose errors name
the JOBQ_* key."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

import jobq
from flask_jobq import JobQ, state_for
from flask_jobq.config import DEFAULTS, HANDLERS, SETTINGS, JobQConfig, settings_docstring


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "JOBQ_POLL_INTERVAL",
            "fast",
            "JOBQ_POLL_INTERVAL must be a finite number of seconds greater than 0, got 'fast'",
        ),
        ("JOBQ_POLL_INTERVAL", float("nan"), "JOBQ_POLL_INTERVAL must be a finite number"),
        (
            "JOBQ_LEASE_SECONDS",
            0,
            "JOBQ_LEASE_SECONDS must be a finite number of seconds greater than 0, got 0",
        ),
        ("JOBQ_CONCURRENCY", True, "JOBQ_CONCURRENCY must be an integer >= 1"),
        ("JOBQ_DATABASE", 42, "JOBQ_DATABASE must be a path"),
        ("JOBQ_SCHEDULES", [], "JOBQ_SCHEDULES must map schedule names"),
        ("JOBQ_MONITOR_AUTH", "admin", "JOBQ_MONITOR_AUTH must be a callable"),
        ("JOBQ_MONITOR_URL_PREFIX", "jobq", "JOBQ_MONITOR_URL_PREFIX must be a path"),
    ],
)
def test_each_bad_setting_is_refused_naming_its_key(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    app = Flask("bad", instance_path=str(tmp_path / "instance"))
    app.config[key] = value
    with pytest.raises((TypeError, ValueError)) as raised:
        JobQ().init_app(app)
    assert str(raised.value).startswith(message)
    assert "jobq" not in app.extensions
    assert not (tmp_path / "instance").exists()  # refused before anything was made


def test_the_settings_object_holds_the_checked_values(tmp_path: Path) -> None:
    app = Flask("typed", instance_path=str(tmp_path / "instance"))
    retention = jobq.Retention(completed=60)
    app.config.update(
        JOBQ_DATABASE="sub/jobs.db",
        JOBQ_CONCURRENCY=3,
        JOBQ_RETENTION=retention,
        JOBQ_MONITOR_URL_PREFIX="/admin/jobs/",
        JOBQ_EMAIL={"host": "mail"},
    )
    settings = JobQConfig.from_app(app)
    assert settings.database == str(tmp_path / "instance" / "sub" / "jobs.db")
    assert (settings.concurrency, settings.retention, settings.queues) == (3, retention, None)
    assert settings.monitor.url_prefix == "/admin/jobs"
    assert settings.handlers == {"email": {"host": "mail"}}
    assert app.config["JOBQ_LEASE_SECONDS"] == 30  # defaults written with setdefault
    with pytest.raises(AttributeError):
        settings.concurrency = 5  # type: ignore[misc]


def test_the_queue_is_opened_with_the_settings(tmp_path: Path) -> None:
    app = Flask("opened", instance_path=str(tmp_path / "instance"))
    app.config.update(JOBQ_LEASE_SECONDS=12, JOBQ_POLL_INTERVAL=0.5, JOBQ_START_WORKERS=False)
    JobQ(app)
    try:
        queue = state_for(app).queue
        assert (queue.lease_seconds, queue.poll_interval) == (12, 0.5)
        assert state_for(app).start_automatically is False
    finally:
        state_for(app).close(timeout=5.0)
        jobq.configure(None)


def test_init_app_documents_every_setting_of_the_table_as_the_table_says() -> None:
    assert JobQ.init_app.__doc__ is not None
    assert settings_docstring() in JobQ.init_app.__doc__, (
        "paste flask_jobq.config.settings_docstring() into JobQ.init_app's docstring"
    )


def test_the_table_holds_every_key_init_app_reads(tmp_path: Path) -> None:
    app = Flask("all", instance_path=str(tmp_path / "instance"))
    JobQConfig.from_app(app)
    written = {key for key in app.config if key.startswith("JOBQ_")}
    keys = [setting.key for setting in SETTINGS]
    assert len(keys) == len(set(keys))
    assert written == set(DEFAULTS)
    assert set(keys) == written | {key for key, _ in HANDLERS}  # the handlers have no default


def test_a_settings_change_after_init_app_counts_when_the_queue_opens(tmp_path: Path) -> None:
    app = Flask("late", instance_path=str(tmp_path / "instance"))
    JobQ(app)
    app.config.update(JOBQ_LEASE_SECONDS=7, JOBQ_DATABASE="later.db")
    state = state_for(app)
    try:
        assert state.queue.lease_seconds == 7
        assert (tmp_path / "instance" / "later.db").exists()
    finally:
        state.close(timeout=5.0)
        jobq.configure(None)
