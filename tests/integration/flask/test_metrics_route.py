"""``GET /jobq/metrics``: its own authorisation (a bearer token, a callable, or the
monitor's default rule), 404 while ``JOBQ_METRICS`` is off, the Prometheus text
format with the app's jobs counted."""

from __future__ import annotations

import pytest
from flask import Flask, request

from flask_jobq import JobQ
from tests.helpers import AppFactory

parser = pytest.importorskip("prometheus_client.parser")


def _scrape(app: Flask, **headers: str) -> tuple[int, str]:
    response = app.test_client().get("/jobq/metrics", headers=headers)
    return response.status_code, response.get_data(as_text=True)


def test_a_bearer_token_opens_the_scrape_and_nothing_else_does(make_app: AppFactory) -> None:
    app = make_app(JOBQ_METRICS=True, JOBQ_METRICS_AUTH="s3cret", JOBQ_MONITOR_AUTH=lambda: True)
    app.testing = False
    assert _scrape(app)[0] == 403  # the monitor's callback does not open the metrics
    assert _scrape(app, Authorization="Bearer wrong")[0] == 403
    assert _scrape(app, Authorization="Basic s3cret")[0] == 403
    status, text = _scrape(app, Authorization="Bearer s3cret")
    assert status == 200
    assert "jobq_database_up 1.0" in text
    response = app.test_client().get("/jobq/metrics", headers={"Authorization": "bearer s3cret"})
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")


def test_without_a_setting_the_scrape_follows_the_monitor_default_rule(
    make_app: AppFactory,
) -> None:
    app = make_app(JOBQ_METRICS=True)
    app.testing = False
    assert _scrape(app)[0] == 403
    app.debug = True
    assert _scrape(app)[0] == 200  # the test client is local: 127.0.0.1, Host localhost
    assert _scrape(app, **{"X-Forwarded-For": "203.0.113.9"})[0] == 403


def test_a_callable_decides(make_app: AppFactory) -> None:
    app = make_app(
        JOBQ_METRICS=True, JOBQ_METRICS_AUTH=lambda: request.headers.get("X-Scraper") == "1"
    )
    app.testing = False
    assert _scrape(app)[0] == 403
    assert _scrape(app, **{"X-Scraper": "1"})[0] == 200


def test_metrics_off_answer_404_and_count_nothing(make_app: AppFactory) -> None:
    app = make_app()
    status, text = _scrape(app)
    assert status == 404
    assert "JOBQ_METRICS" in text


def test_a_scrape_counts_the_app_jobs_and_reads_the_gauges(make_app: AppFactory) -> None:
    ext = JobQ()

    @ext.task("greet", queue="route-test")
    def greet(name: str) -> str:
        return f"hello {name}"

    app = make_app("counted", extension=ext, JOBQ_METRICS=True)
    with app.app_context():
        for name in ("a", "b", "c"):
            greet.enqueue(name)
        assert ext.queue.run_until_empty() == 3
    status, text = _scrape(app)
    assert status == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
    }
    labels = (("queue", "route-test"), ("task", "greet"))
    assert samples[("jobq_jobs_completed_total", labels)] == 3
    assert samples[("jobq_jobs", (("queue", "route-test"), ("status", "completed")))] == 3


def test_a_bad_token_setting_is_refused_naming_the_key() -> None:
    app = Flask(__name__)
    app.config.update(TESTING=True, JOBQ_METRICS_AUTH=42)
    with pytest.raises(TypeError, match="JOBQ_METRICS_AUTH"):
        JobQ(app)
