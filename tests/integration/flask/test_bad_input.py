"""Bad input on every surface of the monitoring blueprint.

Each request must get a clear 4xx JSON error (``Monitor`` checks the body and
validates it against the OpenAPI description), never a 500, and change
nothing; after every test the queue still enqueues and runs a job. The cases
``test_views.py`` already covers (``limit=ten``, ``{not json``, forged form
posts, ...) are not repeated here.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.test import TestResponse

import jobq
from flask_jobq.views import MAX_BODY_SIZE
from tests.helpers import Monitor, enqueue

TEN_MB = 10 * 1024 * 1024


@pytest.fixture(autouse=True)
def queue_still_works(monitor: Monitor, queue: jobq.DurableQueue) -> Iterator[None]:
    """After each test the queue still takes a job, runs it and shows it."""
    yield
    job = enqueue(queue, "add", 2, 3)
    assert queue.run_until_empty() >= 1
    body = monitor.get(f"/jobs/{job.id}").get_json()
    assert (body["status"], body["result"]) == ("completed", 5)


def _error(response: TestResponse, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.get_json())
    body = response.get_json()
    assert body["status"] == status
    return str(body["message"])


# -- job ids ----------------------------------------------------------------------------

_BAD_JOB_IDS = [
    "abc",
    "-1",
    "0",
    str(2**63),
    str(2**64),
    "%00",
    "7" * 10_240,
    "x" * 10_240,
    "1.5",
    "0x1",
    "1e3",
    "%20",
    "%C3%A9",
    "%F0%9F%98%80",
    "%E2%80%AE1",
    "%FF",
    "1%00",
]


@pytest.mark.parametrize("job_id", _BAD_JOB_IDS)
def test_bad_job_ids_are_404(monitor: Monitor, queue: jobq.DurableQueue, job_id: str) -> None:
    job = enqueue(queue, "add", 1, 2)

    message = _error(monitor.get(f"/jobs/{job_id}"), 404)
    _error(monitor.post(f"/jobs/{job_id}/cancel"), 404)
    _error(monitor.post(f"/jobs/{job_id}/retry"), 404)

    assert len(message) < 300  # a 10 KB id is not echoed back
    assert queue.get(job.id).status is jobq.JobStatus.PENDING


# -- query parameters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"limit": "-1"}, "limit"),
        ({"limit": str(10**9)}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"limit": "\x00"}, "limit"),
        ({"limit": "9" * 5000}, "limit"),  # past int()'s digit limit
        ({"after": str(2**63)}, "after"),
        ({"after": "abc"}, "after"),
        ({"status": "PENDING"}, "status"),
        ({"status": ""}, "status"),
        ({"status": "pending "}, "status"),
        ({"status": "pending,failed"}, "status"),
        ({"status": "\x00"}, "status"),
        ({"status": "é"}, "status"),
        ({"status": "x" * 10_240}, "status"),
        ({"order": "ASC"}, "order"),
        ({"order": ""}, "order"),
        ({"x" * 1000: "1"}, "unknown query parameter"),
    ],
)
def test_bad_job_list_parameters_are_400(
    monitor: Monitor, query: dict[str, str], named: str
) -> None:
    assert named in _error(monitor.get("/jobs", query_string=query), 400)


@pytest.mark.parametrize("query", ["status=%FF", "limit=%FF", "after=%C3", "order=%80"])
def test_invalid_utf8_in_the_query_is_400(monitor: Monitor, query: str) -> None:
    _error(monitor.get(f"/jobs?{query}"), 400)


@pytest.mark.parametrize("max_age", ["1e400", "9" * 5000, "\x00", "", "0x10", "%FF"])
def test_bad_max_age_is_400(monitor: Monitor, max_age: str) -> None:
    assert "max_age" in _error(monitor.get("/health", query_string={"max_age": max_age}), 400)


# -- POST bodies ------------------------------------------------------------------------

_BAD_BODIES: list[tuple[dict[str, Any], int]] = [
    ({"data": "hello", "content_type": "application/json"}, 400),
    ({"data": "null", "content_type": "application/json"}, 400),
    ({"data": '"{}"', "content_type": "application/json"}, 400),
    ({"data": "{}{}", "content_type": "application/json"}, 400),
    # Invalid UTF-8 in the body.
    ({"data": b"\xff\xfe{}", "content_type": "application/json"}, 400),
    ({"data": b'{"a": "\xff"}', "content_type": "application/json"}, 400),
    ({"data": b"{\xc3}", "content_type": "application/json; charset=utf-8"}, 400),
    # Nested too deep to decode (a RecursionError in json), but under the size limit.
    ({"data": "[" * 5000, "content_type": "application/json"}, 400),
    ({"data": '{"a":' * 5000, "content_type": "application/json"}, 400),
    ({"data": "[" * 100_000, "content_type": "application/json"}, 413),
    # JSON sent as something else is a form post in disguise.
    ({"data": "{}", "content_type": "text/plain"}, 415),
    ({"data": "{}", "content_type": "text/plain; charset=utf-8"}, 415),
    ({"data": "{}", "content_type": "application/x-www-form-urlencoded"}, 415),
    ({"data": "{}", "content_type": "multipart/form-data; boundary=x"}, 415),
    ({"data": "{}", "content_type": "application/jsonx"}, 415),
    # Too large, whatever it holds.
    ({"data": b"{}" + b" " * TEN_MB, "content_type": "application/json"}, 413),
    ({"data": b"x" * TEN_MB, "content_type": "text/plain"}, 413),
    ({"data": b"x" * TEN_MB, "headers": {"X-Jobq-Request": "1"}}, 413),
    ({"data": b"{}" + b" " * MAX_BODY_SIZE, "content_type": "application/json"}, 413),
]


@pytest.mark.parametrize(("kwargs", "status"), _BAD_BODIES)
@pytest.mark.parametrize("action", ["cancel", "retry", "queue-pause", "schedule-trigger"])
def test_bad_post_bodies_are_refused_and_change_nothing(
    monitor: Monitor, scheduled: jobq.DurableQueue, kwargs: dict[str, Any], status: int, action: str
) -> None:
    failed = enqueue(scheduled, "fail")
    scheduled.run_until_empty()
    pending = enqueue(scheduled, "add", 1, 2)
    path = {
        "cancel": f"/jobs/{pending.id}/cancel",
        "retry": f"/jobs/{failed.id}/retry",
        "queue-pause": "/queues/default/pause",
        "schedule-trigger": "/schedules/hourly-add/trigger",
    }[action]
    before = scheduled.list()

    message = _error(monitor.post(path, **kwargs), status)

    assert len(message) < 300
    assert scheduled.list() == before
    assert scheduled.stats().paused == frozenset()


def test_a_body_at_the_size_limit_is_accepted(monitor: Monitor, queue: jobq.DurableQueue) -> None:
    job = enqueue(queue, "add", 1, 2)
    body = b"{}".ljust(MAX_BODY_SIZE, b" ")

    response = monitor.post(f"/jobs/{job.id}/cancel", data=body, content_type="application/json")

    assert response.status_code == 200
    assert queue.get(job.id).status is jobq.JobStatus.CANCELLED


@pytest.mark.parametrize(("size", "status"), [(2, 200), (TEN_MB, 413)])
def test_a_chunked_body_is_read_only_up_to_the_limit(
    monitor: Monitor, queue: jobq.DurableQueue, size: int, status: int
) -> None:
    """A chunked request has no Content-Length: the view must not read it all."""
    job = enqueue(queue, "add", 1, 2)
    stream = io.BytesIO(b"{}".ljust(size, b" "))

    response = monitor.request(
        "POST",
        f"/jobs/{job.id}/cancel",
        input_stream=stream,
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert response.status_code == status
    assert stream.tell() <= MAX_BODY_SIZE + 1
    expected = jobq.JobStatus.CANCELLED if status == 200 else jobq.JobStatus.PENDING
    assert queue.get(job.id).status is expected


@pytest.mark.parametrize(
    "delay",
    [
        "1e400",
        "-1e400",
        "NaN",
        "Infinity",
        "1" + "0" * 400,
        "-0.5",
        '"1"',
        "[1]",
        "{}",
        json.dumps("x" * 60_000),
    ],
)
def test_retry_rejects_delays_that_are_no_finite_number(
    monitor: Monitor, queue: jobq.DurableQueue, delay: str
) -> None:
    """``10**400`` once overflowed float() and answered 500."""
    job = enqueue(queue, "fail")
    queue.run_until_empty()

    message = _error(
        monitor.post(
            f"/jobs/{job.id}/retry", data=f'{{"delay": {delay}}}', content_type="application/json"
        ),
        400,
    )

    assert message.startswith("delay must be a number of seconds >= 0")
    assert len(message) < 300
    assert queue.get(job.id).status is jobq.JobStatus.FAILED


# -- state ------------------------------------------------------------------------------


@pytest.mark.parametrize("finished", ["completed", "failed", "cancelled"])
def test_cancelling_a_finished_job_is_a_conflict_and_changes_nothing(
    monitor: Monitor, queue: jobq.DurableQueue, finished: str
) -> None:
    job = enqueue(queue, "fail") if finished == "failed" else enqueue(queue, "add", 1, 2)
    if finished == "cancelled":
        queue.cancel(job.id)
    queue.run_until_empty()
    before = queue.get(job.id)
    assert before.status.value == finished

    message = _error(monitor.post(f"/jobs/{job.id}/cancel"), 409)

    assert message == f"job {job.id} is already {finished}; there is nothing to cancel"
    assert queue.get(job.id) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/jobs/1/cancel"),
        ("HEAD", "/jobs/1/retry"),
        ("PUT", "/queues/default/pause"),
        ("DELETE", "/queues/default/resume"),
        ("PATCH", "/schedules/hourly-add/resume"),
        ("GET", "/schedules/hourly-add/trigger"),
        ("GET", "/queues/default/pause"),
    ],
)
def test_state_changing_requests_sent_another_way_are_405(
    monitor: Monitor, scheduled: jobq.DurableQueue, method: str, path: str
) -> None:
    job = enqueue(scheduled, "add", 1, 2)
    before = scheduled.schedules()

    response = monitor.client.open("/jobq" + path, method=method)

    assert response.status_code == 405
    assert "POST" in response.headers["Allow"].split(", ")
    assert not {"GET", "PUT", "DELETE", "PATCH"} & set(response.headers["Allow"].split(", "))
    if method != "HEAD":
        _error(monitor.request(method, path), 405)
    assert scheduled.get(job.id).status is jobq.JobStatus.PENDING
    assert scheduled.schedules() == before
    assert scheduled.stats().paused == frozenset()


# -- names in the path ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "no-such",
        "%00",
        "%20",
        "..",
        "%C3%A9",
        "%E2%80%AE",
        "%F0%9F%98%80",
        "x" * 10_240,
        "HOURLY-ADD",
        "hourly-add%00",
    ],
)
@pytest.mark.parametrize("action", ["pause", "resume", "trigger"])
def test_unknown_schedule_names_are_404(
    monitor: Monitor, scheduled: jobq.DurableQueue, name: str, action: str
) -> None:
    before = scheduled.schedules()

    message = _error(monitor.post(f"/schedules/{name}/{action}"), 404)

    assert message.startswith("no schedule named ")
    assert len(message) < 300
    assert scheduled.schedules() == before
    assert scheduled.list() == []


@pytest.mark.parametrize(
    ("name", "decoded"),
    [
        ("%20", " "),
        ("..", ".."),
        ("%C3%A9", "é"),
        ("%E2%80%AE", "\u202e"),
        ("%EF%BF%BD", "\ufffd"),
        ("a%0Ab", "a\nb"),
        ("x" * 10_240, "x" * 10_240),
    ],
)
def test_odd_queue_names_pause_and_resume_exactly_that_queue(
    monitor: Monitor, queue: jobq.DurableQueue, name: str, decoded: str
) -> None:
    """A queue needs no jobs to be paused, so any name is taken, exactly as sent."""
    assert monitor.post(f"/queues/{name}/pause").get_json() == {"queue": decoded, "paused": True}
    assert queue.stats().paused == {decoded}
    assert monitor.post(f"/queues/{name}/resume").get_json() == {"queue": decoded, "paused": False}
    assert queue.stats().paused == frozenset()


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_a_queue_name_with_nul_is_refused(
    monitor: Monitor, queue: jobq.DurableQueue, action: str
) -> None:
    assert "NUL" in _error(monitor.post(f"/queues/a%00b/{action}"), 400)
    assert queue.stats().paused == frozenset()


@pytest.mark.parametrize("name", ["a%2Fb", "%2F", "a/b"])
def test_queue_names_with_a_slash_have_no_route(
    monitor: Monitor, queue: jobq.DurableQueue, name: str
) -> None:
    _error(monitor.post(f"/queues/{name}/pause"), 404)
    assert queue.stats().paused == frozenset()


@pytest.mark.parametrize("raw", ["\xff", "a\xc3", "\xed\xa0\x80", "\xc0\xaf"])
@pytest.mark.parametrize("action", ["pause", "resume"])
def test_queue_names_that_are_not_utf8_are_400(
    monitor: Monitor, queue: jobq.DurableQueue, raw: str, action: str
) -> None:
    """A server hands the app the path's raw bytes (as latin-1); Werkzeug replaces bad
    UTF-8 with U+FFFD, and pausing the queue "\\ufffd" was not what the client asked.
    (Werkzeug's test client decodes percent escapes itself, hence the raw environ.)"""
    queue.pause("\ufffd")

    response = monitor.post(
        "/queues/x/pause", environ_overrides={"PATH_INFO": f"/jobq/queues/{raw}/{action}"}
    )

    assert "UTF-8" in _error(response, 400)
    assert queue.stats().paused == {"\ufffd"}
    queue.resume("\ufffd")


def test_invalid_utf8_elsewhere_in_the_path_is_404(
    monitor: Monitor, scheduled: jobq.DurableQueue
) -> None:
    for path in ("/jobs/\xff", "/\xff", "/jobs/1/\xff", "/schedules/\xff/pause"):
        response = monitor.post("/x", environ_overrides={"PATH_INFO": "/jobq" + path})
        _error(response, 404)
    response = monitor.get("/x", environ_overrides={"PATH_INFO": "/jobq/jobs/\xff"})
    _error(response, 404)
    assert scheduled.list() == []
