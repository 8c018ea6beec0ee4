"""``GET /jobq`` (and ``/jobq/``): an index of the monitor under its authorisation; and
``/jobq/health``, which a load balancer calls without monitor credentials."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask, request

from flask_jobq import JobQ, state_for
from tests.helpers import AppFactory, Monitor


def _token() -> bool:
    return request.headers.get("X-Token") == "s3cret"


@pytest.mark.parametrize("path", ["", "/"])
def test_the_prefix_answers_an_index_of_links_that_all_answer(
    monitor_app: Callable[..., Flask], path: str
) -> None:
    app = monitor_app(JOBQ_MONITOR_AUTH=_token)
    monitor = Monitor(app)
    allowed = {"X-Token": "s3cret"}

    index = monitor.get(path, headers=allowed)

    assert index.status_code == 200
    links = index.get_json()["links"]
    assert links == {
        "stats": "/jobq/stats",
        "jobs": "/jobq/jobs",
        "schedules": "/jobq/schedules",
        "workers": "/jobq/workers",
        "running": "/jobq/running",
        "batches": "/jobq/batches",
        "health": "/jobq/health",
        "openapi": "/jobq/openapi.json",
    }
    for link in links.values():
        assert monitor.get(link.removeprefix("/jobq"), headers=allowed).status_code == 200
    assert monitor.get(path).status_code == 403  # the monitor's authorisation applies


def test_health_is_open_with_the_status_alone_and_details_for_monitor_credentials(
    monitor_app: Callable[..., Flask],
) -> None:
    app = monitor_app(JOBQ_MONITOR_AUTH=_token)
    app.testing = False  # no testing-mode openness: a production app
    monitor = Monitor(app)

    anonymous = monitor.get("/health")
    assert anonymous.status_code == 200
    assert anonymous.get_json() == {"status": "ok"}

    detailed = monitor.get("/health", headers={"X-Token": "s3cret"})
    assert detailed.status_code == 200
    body = detailed.get_json()
    assert (body["status"], body["healthy"], body["queue_reachable"]) == ("ok", True, True)


def test_health_answers_503_with_the_status_alone_when_the_workers_are_down(
    make_app: AppFactory,
) -> None:
    app = make_app("web", TESTING=False, JOBQ_MONITOR_AUTH=_token)
    monitor = Monitor(app)
    assert monitor.get("/health").get_json() == {"status": "ok"}  # the pool started
    pool = state_for(app).pool
    assert pool is not None
    pool.stop(timeout=5.0)  # as if its dispatcher had died: the state still holds it

    sick = monitor.get("/health")

    assert sick.status_code == 503
    assert sick.get_json() == {"status": "unavailable"}
    details = monitor.get("/health", headers={"X-Token": "s3cret"}).get_json()
    assert details["problems"] == ["no worker pool is running in this process"]


def test_health_auth_protects_or_closes_the_endpoint(monitor_app: Callable[..., Flask]) -> None:
    app = monitor_app(JOBQ_HEALTH_AUTH=lambda: request.headers.get("X-Probe") == "lb")
    app.testing = False
    monitor = Monitor(app)

    assert monitor.get("/health", headers={"X-Probe": "lb"}).get_json() == {"status": "ok"}
    refused = monitor.get("/health")
    assert refused.status_code == 403
    assert "health" in refused.get_json()["message"]

    app.config["JOBQ_HEALTH_AUTH"] = lambda: False  # read at each request: closed now
    assert monitor.get("/health", headers={"X-Probe": "lb"}).status_code == 403


def test_a_health_auth_that_is_not_callable_is_refused_by_init_app(make_app: AppFactory) -> None:
    with pytest.raises(TypeError, match="JOBQ_HEALTH_AUTH must be a callable or None"):
        make_app(JOBQ_HEALTH_AUTH="open")


def test_without_the_extension_state_the_health_endpoint_still_needs_the_app(
    tmp_path: object, ext: JobQ
) -> None:
    app = Flask("plain")
    assert "jobq" not in app.extensions
    assert app.test_client().get("/jobq/health").status_code == 404  # nothing mounted
