"""Schemathesis against the monitor's served OpenAPI description, through WSGI.

Each operation gets generated requests, valid ones and (where it has
parameters or a body) invalid ones; every answer must be no 5xx, carry a
status code documented for it, and fit the documented schema. Once with an
authorisation callback allowing everything (POSTs carry ``X-Jobq-Request: 1``),
once with none outside testing, where every answer is a documented 403. The
runs are derandomised and bounded so this module takes seconds.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flask_jobq import state_for
from flask_jobq.openapi import openapi_spec
from tests.helpers import NIGHTLY, enqueue

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core import NOT_SET  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]
OPERATIONS = [
    pytest.param(path, method, id=f"{method.upper()} {path}")
    for path, operations in openapi_spec()["paths"].items()
    for method in operations
]
SCHEDULES = ["minutely", NIGHTLY]


def _bounded(max_examples: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def _seeded(app: Flask) -> list[int]:
    """Jobs in every finished state, pending, delayed and two schedules; their ids."""
    queue = state_for(app).queue
    done = enqueue(queue, "add", 1, 2)
    failed = enqueue(queue, "fail")
    reported = enqueue(queue, "report", 4)
    queue.run_until_empty(queues=["default", "other"])
    pending = enqueue(queue, "add", 3, 4)
    delayed = enqueue(queue, "add", 5, 6, delay=3600)
    cancelled = enqueue(queue, "add", 7, 8)
    queue.cancel(cancelled.id)
    queue.schedule("add", every=60, name="minutely", args=[1, 1])
    queue.schedule("report", cron="0 3 * * *", tz="Europe/Paris", name=NIGHTLY, kwargs={"n": 7})
    queue.fire_due_schedules(now=time.time() + 61)  # a last fire and its job to show
    queue.pause("other")
    with queue.batch(on_complete="report", meta={"n": 1}) as batch:  # a batch to show
        batch.enqueue("add", 9, 9)
    return [done.id, failed.id, reported.id, pending.id, delayed.id, cancelled.id]


def _run(
    app: Flask, path: str, method: str, max_examples: int, headers: dict[str, str] | None
) -> Counter[int]:
    """Fuzz one operation of ``app``'s monitor; the status codes it answered."""
    testing, app.testing = app.testing, True  # the description needs no callback to load
    schema = schemathesis.openapi.from_wsgi("/jobq/openapi.json", app)
    app.testing = testing
    operation = schema[path][method.upper()]
    checks = CHECKS
    if path == "/health":  # its 503 is a documented answer: "unhealthy, and why"
        checks = [check for check in CHECKS if check is not not_a_server_error]
    ids = [job.id for job in state_for(app).queue.list()]
    statuses: Counter[int] = Counter()
    modes = [GenerationMode.POSITIVE]
    if operation.definition.raw.get("parameters") or operation.body:
        modes.append(GenerationMode.NEGATIVE)  # nothing to spoil in the others
    for mode in modes:
        strategies = [operation.as_strategy(generation_mode=mode)]
        if "{job_id}" in path:  # real jobs too, not only ids nobody has
            strategies.append(
                st.sampled_from(ids).flatmap(
                    lambda job_id, mode=mode: operation.as_strategy(
                        generation_mode=mode, path_parameters={"job_id": job_id}
                    )
                )
            )
        if path.startswith("/schedules/{name}"):
            strategies.append(
                st.sampled_from(SCHEDULES).flatmap(
                    lambda name, mode=mode: operation.as_strategy(
                        generation_mode=mode, path_parameters={"name": name}
                    )
                )
            )

        @_bounded(max_examples)
        @given(case=st.one_of(strategies))
        def fuzz(case: Any) -> None:
            response = case.call(headers=headers)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=checks)
            assert response.status_code != 500
            if path == "/health" and response.status_code == 503:
                assert response.json()["status"] == "unavailable"
                if "healthy" in response.json():  # the details, for monitor credentials
                    assert response.json()["healthy"] is False
                    assert response.json()["problems"]

        fuzz()
    if "{job_id}" in path:  # each real job once, whatever the fuzzer happened to pick
        for job_id in ids:
            body = {} if method == "post" else NOT_SET
            case = operation.Case(path_parameters={"job_id": job_id}, body=body)
            response = case.call(headers=headers)
            statuses[response.status_code] += 1
    if "{batch_id}" in path:  # each real batch once
        for state in state_for(app).queue.list_batches():
            body = {} if method == "post" else NOT_SET
            case = operation.Case(path_parameters={"batch_id": state.id}, body=body)
            response = case.call(headers=headers)
            case.validate_response(response, checks=checks)
            statuses[response.status_code] += 1
    return statuses


def _still_works(app: Flask) -> None:
    queue = state_for(app).queue
    queue.resume("default")
    job = enqueue(queue, "add", 20, 22)
    queue.run_until_empty()
    assert queue.get(job.id).decoded_result() == 42


# The dashboard's form posts need its CSRF cookie and the same token in a field, which
# generated requests cannot have: they are refused (403, documented), and
# tests/integration/flask/test_dashboard.py drives them with real tokens.
FORMS = {
    (path, method)
    for path, operations in openapi_spec()["paths"].items()
    for method, operation in operations.items()
    if operation.get("x-jobq-form")
}


@pytest.mark.parametrize(
    ("path", "method"), [op for op in OPERATIONS if tuple(op.values) not in FORMS]
)
def test_authorised_requests_conform_to_the_openapi_description(
    monitor_app: Callable[..., Flask], path: str, method: str
) -> None:
    app = monitor_app(
        JOBQ_MONITOR_AUTH=lambda: True, JOBQ_METRICS=True, JOBQ_METRICS_AUTH=lambda: True
    )
    app.testing = False  # the callback decides, as in production
    _seeded(app)
    headers = {"X-Jobq-Request": "1"} if method == "post" else None

    statuses = _run(app, path, method, 30, headers)

    assert not [status for status in statuses if status >= 500 and path != "/health"]
    assert any(200 <= status < 300 for status in statuses), statuses  # real data was hit
    _still_works(app)


@pytest.mark.parametrize(("path", "method"), [op for op in OPERATIONS if op.values[0] != "/health"])
def test_without_authorisation_every_answer_is_a_documented_403(
    monitor_app: Callable[..., Flask], path: str, method: str
) -> None:
    app = monitor_app()  # no JOBQ_MONITOR_AUTH
    app.testing = False
    ids = _seeded(app)
    before = [state_for(app).queue.get(job_id) for job_id in ids]

    statuses = _run(app, path, method, 10, None)

    assert set(statuses) == {403}
    assert [state_for(app).queue.get(job_id) for job_id in ids] == before
    assert state_for(app).queue.stats().paused == {"other"}
    _still_works(app)
