"""The monitoring blueprint: every endpoint, every error, authorisation, CSRF, OpenAPI.

Every response goes through ``Monitor``, which checks it is JSON and, when
``jsonschema`` is installed, valid against the OpenAPI description.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask, request

import jobq
from flask_jobq import JobQ, state_for
from flask_jobq.openapi import openapi_spec
from flask_jobq.views import BLUEPRINT_NAME, register_monitor, stats_json
from jobq.storage.base import Stats
from tests.helpers import NIGHTLY, AppFactory, Monitor, enqueue, eventually

try:
    import jsonschema
except ImportError:  # the dedicated test below skips visibly; the others only lose the check
    jsonschema = None

SPEC = openapi_spec("/jobq")


MonitorFactory = Callable[..., Monitor]


# -- GET /stats -------------------------------------------------------------------------


def test_stats_match_queue_stats(monitor: Monitor, queue: jobq.DurableQueue) -> None:
    enqueue(queue, "report", 1)
    enqueue(queue, "fail")
    queue.run_until_empty(queues=["default", "other"])
    enqueue(queue, "add", 1, 2)
    enqueue(queue, "add", 1, 2, delay=3600)
    queue.pause("other")

    body = monitor.get("/stats").get_json()

    stats = queue.stats()
    expected = stats_json(stats)
    for name, queue_body in body["queues"].items():  # ages grow between the two snapshots
        assert queue_body.pop("oldest_runnable_age") == pytest.approx(
            expected["queues"][name].pop("oldest_runnable_age"), abs=5
        )
    assert body == expected
    assert set(body["queues"]) == set(stats.queues) == {"default", "other"}
    for name, queue_stats in stats.queues.items():
        for status in jobq.JobStatus:
            assert body["queues"][name]["counts"][status.value] == queue_stats.counts[status]
        assert body["queues"][name]["scheduled"] == queue_stats.scheduled
    assert body["queues"]["default"]["counts"]["pending"] == 2
    assert body["queues"]["default"]["counts"]["failed"] == 1
    assert body["queues"]["default"]["scheduled"] == 1
    assert body["queues"]["other"]["counts"]["completed"] == 1
    assert body["totals"] == {
        "pending": 2,
        "processing": 0,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
    }
    assert body["completed_last_minute"] == stats.completed_last_minute == 1
    assert body["failed_last_minute"] == stats.failed_last_minute == 1
    assert body["paused"] == ["other"]
    assert body["queues"]["other"]["paused"] is True
    assert body["queues"]["default"]["paused"] is False


# -- GET /jobs --------------------------------------------------------------------------


def test_jobs_pages_follow_the_cursor_to_the_end(
    monitor: Monitor, queue: jobq.DurableQueue
) -> None:
    ids = [enqueue(queue, "add", i, i).id for i in range(7)]

    seen: list[int] = []
    after: int | None = None
    pages = 0
    while True:
        query = {"limit": 3} if after is None else {"limit": 3, "after": after}
        body = monitor.get("/jobs", query_string=query).get_json()
        seen += [job["id"] for job in body["jobs"]]
        pages += 1
        after = body["next_after"]
        if after is None:
            break
    assert seen == ids
    assert pages == 3

    newest = monitor.get("/jobs", query_string={"order": "desc", "limit": 2}).get_json()
    assert [job["id"] for job in newest["jobs"]] == ids[::-1][:2]
    assert newest["next_after"] == ids[-2]
    exact = monitor.get("/jobs", query_string={"limit": 7}).get_json()
    assert len(exact["jobs"]) == 7
    assert exact["next_after"] is None  # no empty last page when the count divides evenly
    assert len(monitor.get("/jobs").get_json()["jobs"]) == 7


def test_jobs_filters_by_status_name_and_queue(monitor: Monitor, queue: jobq.DurableQueue) -> None:
    failed = enqueue(queue, "fail")
    reported = enqueue(queue, "report", 3)
    queue.run_until_empty(queues=["default", "other"])
    pending = enqueue(queue, "add", 1, 2)
    other_queue = enqueue(queue, "add", 1, 2, queue="other")

    def ids(**query: Any) -> list[int]:
        body = monitor.get("/jobs", query_string=query).get_json()
        return [job["id"] for job in body["jobs"]]

    assert ids(status="failed") == [failed.id]
    assert ids(status="pending") == [pending.id, other_queue.id]
    assert ids(name="add") == [pending.id, other_queue.id]
    assert ids(queue="other") == [reported.id, other_queue.id]
    assert ids(queue="other", status="pending", name="add") == [other_queue.id]
    assert ids(name="nothing-by-this-name") == []


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"status": "done"}, "status"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "2.5"}, "limit"),
        ({"after": "x"}, "after"),
        ({"after": "-1"}, "after"),
        ({"order": "sideways"}, "order"),
        ({"state": "failed"}, "state"),
    ],
)
def test_jobs_rejects_malformed_filters(
    monitor: Monitor, query: dict[str, str], named: str
) -> None:
    response = monitor.get("/jobs", query_string=query)
    assert response.status_code == 400
    assert named in response.get_json()["message"]


# -- GET /jobs/<id> ---------------------------------------------------------------------


def test_job_shows_every_field_decoded(monitor: Monitor, queue: jobq.DurableQueue) -> None:
    job = enqueue(queue, "report", 5, unique_key="r-5", priority=3)
    queue.run_until_empty(queues=["other"])

    body = monitor.get(f"/jobs/{job.id}").get_json()

    stored = queue.get(job.id)
    assert body == {
        "id": job.id,
        "name": "report",
        "queue": "other",
        "status": "completed",
        "priority": 3,
        "attempts": 1,
        "max_attempts": 3,
        "run_at": stored.run_at,
        "created_at": stored.created_at,
        "started_at": stored.started_at,
        "finished_at": stored.finished_at,
        "updated_at": stored.updated_at,
        "error": None,
        "result": {"n": 5},
        "progress": {"done": 5},
        "unique_key": "r-5",
        "cancel_requested": False,
        "expires_at": None,
        "limit_key": None,
        "batch_id": None,
    }
    assert isinstance(body["finished_at"], float)


def test_failed_job_shows_its_error(monitor: Monitor, queue: jobq.DurableQueue) -> None:
    job = enqueue(queue, "fail")
    queue.run_until_empty()

    body = monitor.get(f"/jobs/{job.id}").get_json()

    assert body["status"] == "failed"
    assert body["error"]["type"] == "Fail"
    assert body["error"]["message"] == "it went wrong"
    assert "Traceback" in body["error"]["traceback"]
    assert body["result"] is None
    assert body["progress"] is None


@pytest.mark.parametrize("path", ["/jobs/999", f"/jobs/{2**70}", "/jobs/abc", "/jobs/-1"])
def test_unknown_job_is_404(monitor: Monitor, path: str) -> None:
    response = monitor.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"] == "Not Found"


def test_unknown_job_message_names_the_id(monitor: Monitor) -> None:
    assert monitor.get("/jobs/999").get_json()["message"] == "no job with id 999"


# -- POST /jobs/<id>/cancel and /retry ---------------------------------------------------


def test_cancel_a_pending_job(monitor: Monitor, queue: jobq.DurableQueue) -> None:
    job = enqueue(queue, "add", 1, 2)

    response = monitor.post(f"/jobs/{job.id}/cancel")

    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"
    assert queue.get(job.id).status is jobq.JobStatus.CANCELLED


def test_cancel_with_the_header_instead_of_a_body(
    monitor: Monitor, queue: jobq.DurableQueue
) -> None:
    job = enqueue(queue, "add", 1, 2)

    response = monitor.post(f"/jobs/{job.id}/cancel", headers={"X-Jobq-Request": "1"})

    assert response.status_code == 200
    assert queue.get(job.id).status is jobq.JobStatus.CANCELLED


def test_cancel_and_retry_unknown_job_are_404(monitor: Monitor) -> None:
    assert monitor.post("/jobs/999/cancel").status_code == 404
    assert monitor.post("/jobs/999/retry").status_code == 404


def test_retry_a_failed_job(monitor: Monitor, queue: jobq.DurableQueue) -> None:
    job = enqueue(queue, "fail")
    queue.run_until_empty()

    body = monitor.post(f"/jobs/{job.id}/retry").get_json()

    assert body["status"] == "pending"
    assert body["attempts"] == 0
    assert queue.get(job.id).status is jobq.JobStatus.PENDING


def test_retry_with_a_delay(monitor: Monitor, queue: jobq.DurableQueue) -> None:
    job = enqueue(queue, "fail")
    queue.run_until_empty()
    before = time.time()

    body = monitor.post(f"/jobs/{job.id}/retry", json={"delay": 600}).get_json()

    assert body["run_at"] >= before + 600
    assert queue.stats().queues["default"].scheduled == 1


@pytest.mark.parametrize("delay", [-1, "soon", True, None])
def test_retry_rejects_a_bad_delay(
    monitor: Monitor, queue: jobq.DurableQueue, delay: object
) -> None:
    job = enqueue(queue, "fail")
    queue.run_until_empty()

    response = monitor.post(f"/jobs/{job.id}/retry", json={"delay": delay})

    assert response.status_code == 400
    assert "delay" in response.get_json()["message"]
    assert queue.get(job.id).status is jobq.JobStatus.FAILED


def test_retry_of_a_job_that_did_not_fail_is_409(
    monitor: Monitor, queue: jobq.DurableQueue
) -> None:
    job = enqueue(queue, "add", 1, 2)

    response = monitor.post(f"/jobs/{job.id}/retry")

    assert response.status_code == 409
    assert "only failed or cancelled jobs" in response.get_json()["message"]
    assert queue.get(job.id).status is jobq.JobStatus.PENDING


# -- POST /queues/<name>/pause and /resume ----------------------------------------------


def test_pause_and_resume_a_queue(monitor: Monitor, queue: jobq.DurableQueue) -> None:
    response = monitor.post("/queues/other/pause")
    assert response.get_json() == {"queue": "other", "paused": True}
    assert queue.stats().paused == {"other"}
    assert monitor.get("/stats").get_json()["paused"] == ["other"]

    response = monitor.post("/queues/other/resume", headers={"X-Jobq-Request": "1"})
    assert response.get_json() == {"queue": "other", "paused": False}
    assert queue.stats().paused == frozenset()


def test_pausing_more_queue_names_than_allowed_is_a_conflict(
    monitor: Monitor, queue: jobq.DurableQueue
) -> None:
    from jobq.storage.base import MAX_PAUSED_QUEUES

    for n in range(MAX_PAUSED_QUEUES):
        queue.pause(f"q{n}")
    response = monitor.post("/queues/one-more/pause")
    assert response.status_code == 409
    assert "1,000 queues are paused already" in response.get_json()["message"]
    assert "one-more" not in queue.stats().paused
    assert monitor.post("/queues/q7/pause").status_code == 200  # already paused: fine


_FORGED_POSTS: list[dict[str, Any]] = [
    {"data": {"delay": "0"}},  # what an HTML form sends
    {"data": "{}", "content_type": "text/plain"},  # a "simple" cross-site request
    {"data": "", "headers": {"X-Jobq-Request": "0"}},
    {"data": ""},
]


# -- /schedules ------------------------------------------------------------------------

NIGHTLY_URL = "nightly%20report%2Feu"


def _schedule(queue: jobq.DurableQueue, name: str) -> dict[str, Any]:
    [info] = [info for info in queue.schedules() if info.name == name]
    return info.as_dict()


def test_schedules_empty_before_any_is_stored(monitor: Monitor) -> None:
    assert monitor.get("/schedules").get_json() == {"schedules": []}


def test_schedules_list_every_stored_schedule(
    monitor: Monitor, scheduled: jobq.DurableQueue
) -> None:
    before = time.time()

    body = monitor.get("/schedules").get_json()

    assert body == {"schedules": [info.as_dict() for info in scheduled.schedules()]}
    hourly, nightly = body["schedules"]
    assert hourly == {
        "name": "hourly-add",
        "task": "add",
        "cron": None,
        "every": 3600,
        "tz": "UTC",
        "args": [1, 2],
        "kwargs": {},
        "missed": "once",
        "next_fire_at": hourly["next_fire_at"],
        "last_fire_at": None,
        "last_job_id": None,
        "paused": False,
    }
    assert before < hourly["next_fire_at"] <= before + 3600
    assert hourly["next_fire_at"] % 3600 == 0
    assert (nightly["name"], nightly["task"], nightly["cron"], nightly["every"]) == (
        NIGHTLY,
        "report",
        "0 3 * * *",
        None,
    )
    assert (nightly["tz"], nightly["kwargs"], nightly["missed"]) == (
        "Europe/Paris",
        {"n": 7},
        "skip",
    )
    paris = datetime.fromtimestamp(nightly["next_fire_at"], ZoneInfo("Europe/Paris"))
    assert (paris.hour, paris.minute) == (3, 0)


def test_schedules_show_the_last_fire_and_its_job(
    monitor: Monitor, scheduled: jobq.DurableQueue
) -> None:
    due = _schedule(scheduled, "hourly-add")["next_fire_at"]
    fired = scheduled.fire_due_schedules(now=due + 1)  # the nightly one too, at 3am in Paris
    job_id = _schedule(scheduled, "hourly-add")["last_job_id"]
    assert job_id in fired

    [hourly, _] = monitor.get("/schedules").get_json()["schedules"]

    assert (hourly["last_fire_at"], hourly["last_job_id"]) == (due, job_id)
    assert hourly["next_fire_at"] == due + 3600
    assert isinstance(hourly["last_fire_at"], float)
    assert monitor.get(f"/jobs/{job_id}").get_json()["name"] == "add"


def test_pause_and_resume_a_schedule(monitor: Monitor, scheduled: jobq.DurableQueue) -> None:
    due = _schedule(scheduled, "hourly-add")["next_fire_at"]

    paused = monitor.post("/schedules/hourly-add/pause")

    assert paused.status_code == 200
    assert paused.get_json() == _schedule(scheduled, "hourly-add")
    assert paused.get_json()["paused"] is True
    assert scheduled.fire_due_schedules(now=due + 7200) == []  # paused everywhere
    assert monitor.get("/schedules").get_json()["schedules"][0]["paused"] is True
    assert _schedule(scheduled, NIGHTLY)["paused"] is False

    before = time.time()
    resumed = monitor.post("/schedules/hourly-add/resume", headers={"X-Jobq-Request": "1"})

    assert resumed.status_code == 200
    assert resumed.get_json() == _schedule(scheduled, "hourly-add")
    assert resumed.get_json()["paused"] is False
    assert before < resumed.get_json()["next_fire_at"] <= before + 3600
    assert len(scheduled.fire_due_schedules(now=due + 1)) == 1


def test_pause_and_resume_are_idempotent(monitor: Monitor, scheduled: jobq.DurableQueue) -> None:
    for _ in range(2):
        assert monitor.post(f"/schedules/{NIGHTLY_URL}/pause").get_json()["paused"] is True
    assert _schedule(scheduled, NIGHTLY)["paused"] is True
    for _ in range(2):
        assert monitor.post(f"/schedules/{NIGHTLY_URL}/resume").get_json()["paused"] is False
    assert _schedule(scheduled, NIGHTLY)["paused"] is False


def test_trigger_enqueues_the_job_now_and_leaves_the_fire_times(
    monitor: Monitor, scheduled: jobq.DurableQueue
) -> None:
    monitor.post(f"/schedules/{NIGHTLY_URL}/pause")
    before = _schedule(scheduled, NIGHTLY)

    response = monitor.post(f"/schedules/{NIGHTLY_URL}/trigger")

    assert response.status_code == 202
    job = response.get_json()
    assert (job["name"], job["queue"], job["status"]) == ("report", "other", "pending")
    assert response.headers["Location"] == f"/jobq/jobs/{job['id']}"
    assert monitor.get(f"/jobs/{job['id']}").get_json() == job
    assert _schedule(scheduled, NIGHTLY) == before  # still paused, same fire times
    assert scheduled.run_until_empty(queues=["other"]) == 1
    assert scheduled.get(job["id"]).decoded_result() == {"n": 7}


@pytest.mark.parametrize(
    ("name", "routed"),
    [
        ("nope", True),
        ("hourly%20add", True),
        ("hourly-add%2Fx", True),
        ("HOURLY-ADD", True),
        ("%FF", True),
        ("%00", True),
        ("x" * 10_240, True),
        ("nightly%20report", True),
        ("nightly%20report%2F%2Feu", True),
        ("hourly-add%2F", True),
        ("..", True),
        # No route: a name starting with "/" or holding a line break (clean 404s all the same).
        ("%2Fhourly-add", False),
        ("hourly-add%0A", False),
        ("%2F%2Fhourly-add", False),
    ],
)
@pytest.mark.parametrize("action", ["pause", "resume", "trigger"])
def test_unknown_schedule_is_404_and_changes_nothing(
    monitor: Monitor, scheduled: jobq.DurableQueue, name: str, routed: bool, action: str
) -> None:
    before = scheduled.schedules()

    response = monitor.post(f"/schedules/{name}/{action}")

    assert response.status_code == 404
    message = response.get_json()["message"]
    assert message.startswith("no schedule named ") is routed, message
    assert len(message) < 300
    assert scheduled.schedules() == before
    assert scheduled.list() == []


def test_unknown_schedule_message_names_it(monitor: Monitor, scheduled: jobq.DurableQueue) -> None:
    response = monitor.post("/schedules/no%20such/trigger")
    assert response.get_json()["message"] == "no schedule named 'no such'"
    long = monitor.post("/schedules/" + "y" * 10_240 + "/pause").get_json()["message"]
    assert long == f"no schedule named {'y' * 200!r}... (10240 characters)"


@pytest.mark.parametrize(
    "path", ["/schedules/", "/schedules//pause", "/schedules/x", "/schedules/hourly-add/explode"]
)
def test_schedule_routes_that_do_not_exist_are_404_json(monitor: Monitor, path: str) -> None:
    response = monitor.post(path)
    assert response.status_code == 404
    assert response.get_json()["error"] == "Not Found"


@pytest.mark.parametrize("kwargs", _FORGED_POSTS)
def test_schedule_posts_without_json_or_header_are_refused_and_change_nothing(
    monitor: Monitor, scheduled: jobq.DurableQueue, kwargs: dict[str, Any]
) -> None:
    before = scheduled.schedules()
    for action in ("pause", "resume", "trigger"):
        response = monitor.post(f"/schedules/hourly-add/{action}", **kwargs)
        assert response.status_code == 415, action
        assert "X-Jobq-Request" in response.get_json()["message"]
    assert scheduled.schedules() == before
    assert scheduled.list() == []


@pytest.mark.parametrize("data", ["{not json", "[]", "3"])
def test_schedule_post_with_a_malformed_json_body_is_400(
    monitor: Monitor, scheduled: jobq.DurableQueue, data: str
) -> None:
    response = monitor.post(
        "/schedules/hourly-add/pause", data=data, content_type="application/json"
    )
    assert response.status_code == 400
    assert _schedule(scheduled, "hourly-add")["paused"] is False


@pytest.mark.parametrize("answer", [None, False])
def test_schedules_need_authorisation(
    monitor_app: Callable[..., Flask], answer: bool | None
) -> None:
    app = monitor_app(JOBQ_MONITOR_AUTH=None if answer is None else (lambda: answer))
    app.testing = False
    queue = state_for(app).queue
    queue.schedule("add", every=60, name="minutely", args=[1, 1])
    queue.fire_due_schedules()
    before = queue.schedules()
    monitor = Monitor(app)

    assert monitor.get("/schedules").status_code == 403
    for action in ("pause", "resume", "trigger"):
        assert monitor.post(f"/schedules/minutely/{action}").status_code == 403, action
    assert queue.schedules() == before
    assert queue.list() == []


def test_schedules_when_the_database_fails(
    monitor: Monitor, scheduled: jobq.DurableQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise jobq.StorageError("disk I/O error")

    monkeypatch.setattr(scheduled.storage, "list_schedules", broken)

    for response in (
        monitor.get("/schedules"),
        monitor.post("/schedules/hourly-add/pause"),
        monitor.post("/schedules/hourly-add/trigger"),
    ):
        assert response.status_code == 503
        assert "disk I/O error" in response.get_json()["message"]


# -- cross-site requests and methods ----------------------------------------------------


@pytest.mark.parametrize("kwargs", _FORGED_POSTS)
def test_posts_without_json_or_header_are_refused_and_change_nothing(
    monitor: Monitor, queue: jobq.DurableQueue, kwargs: dict[str, Any]
) -> None:
    failed = enqueue(queue, "fail")
    queue.run_until_empty()
    pending = enqueue(queue, "add", 1, 2)

    for path in (f"/jobs/{pending.id}/cancel", f"/jobs/{failed.id}/retry", "/queues/default/pause"):
        response = monitor.post(path, **kwargs)
        assert response.status_code == 415
        assert "X-Jobq-Request" in response.get_json()["message"]

    assert queue.get(pending.id).status is jobq.JobStatus.PENDING
    assert queue.get(failed.id).status is jobq.JobStatus.FAILED
    assert queue.stats().paused == frozenset()


@pytest.mark.parametrize("data", ["", "{not json", "[]", "3"])
def test_post_with_a_malformed_json_body_is_400(
    monitor: Monitor, queue: jobq.DurableQueue, data: str
) -> None:
    job = enqueue(queue, "add", 1, 2)

    response = monitor.post(f"/jobs/{job.id}/cancel", data=data, content_type="application/json")

    assert response.status_code == 400
    assert "JSON object" in response.get_json()["message"]
    assert queue.get(job.id).status is jobq.JobStatus.PENDING


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/jobs/1/cancel"),
        ("GET", "/jobs/1/retry"),
        ("GET", "/queues/default/pause"),
        ("GET", "/queues/default/resume"),
        ("POST", "/stats"),
        ("DELETE", "/jobs/1"),
        ("PUT", "/health"),
        ("GET", "/schedules/hourly-add/pause"),
        ("GET", "/schedules/hourly-add/trigger"),
        ("POST", "/schedules"),
    ],
)
def test_wrong_method_is_405_json(
    monitor: Monitor, queue: jobq.DurableQueue, method: str, path: str
) -> None:
    job = enqueue(queue, "add", 1, 2)
    assert job.id == 1

    response = monitor.request(method, path)

    assert response.status_code == 405
    assert response.get_json()["error"] == "Method Not Allowed"
    assert response.headers["Allow"]
    assert queue.get(job.id).status is jobq.JobStatus.PENDING  # no GET side effect


@pytest.mark.parametrize("path", ["/nope", "/jobs/1/explode", "/queues/x"])
def test_unknown_route_under_the_prefix_is_404_json(monitor: Monitor, path: str) -> None:
    response = monitor.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"] == "Not Found"


def test_routes_outside_the_prefix_keep_the_apps_own_errors(app: Flask) -> None:
    @app.errorhandler(404)
    def not_found(error: Exception) -> tuple[str, int]:
        return "the app's own page", 404

    client = app.test_client()
    assert client.get("/elsewhere").data == b"the app's own page"
    assert client.get("/jobqx").data == b"the app's own page"
    assert client.get("/jobq/nope").is_json


# -- authorisation ----------------------------------------------------------------------

_EVERY_ENDPOINT = [
    ("GET", "/stats"),
    ("GET", "/jobs"),
    ("GET", "/jobs/1"),
    ("GET", "/running"),
    ("GET", ""),
    ("GET", "/"),
    ("GET", "/openapi.json"),
    ("POST", "/jobs/1/cancel"),
    ("POST", "/jobs/1/retry"),
    ("POST", "/queues/default/pause"),
    ("POST", "/queues/default/resume"),
    ("GET", "/nope"),
    ("POST", "/jobs"),
    ("GET", "/schedules"),
    ("POST", "/schedules/x/pause"),
    ("POST", "/schedules/x/resume"),
    ("POST", "/schedules/x/trigger"),
]


def test_without_a_callback_everything_is_403_outside_debug_and_testing(
    app: Flask, queue: jobq.DurableQueue
) -> None:
    app.testing = False
    job = enqueue(queue, "add", 1, 2)
    monitor = Monitor(app)

    for method, path in _EVERY_ENDPOINT:
        response = monitor.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == 403, (method, path)
        assert "JOBQ_MONITOR_AUTH" in response.get_json()["message"]
        assert "@jobq_ext.monitor_auth" in response.get_json()["message"]
    assert queue.get(job.id).status is jobq.JobStatus.PENDING
    assert queue.stats().paused == frozenset()


def test_debug_mode_is_open_to_local_requests_without_a_callback(app: Flask) -> None:
    app.testing = False
    app.debug = True
    monitor = Monitor(app)
    assert monitor.get("/stats").status_code == 200  # the test client: 127.0.0.1, localhost
    for headers in ({"Host": "evil.example"}, {"X-Forwarded-For": "203.0.113.9"}):
        refused = monitor.get("/stats", headers=headers)
        assert refused.status_code == 403
        assert "JOBQ_MONITOR_AUTH" in refused.get_json()["message"]
    elsewhere = monitor.get("/stats", environ_base={"REMOTE_ADDR": "192.0.2.1"})
    assert elsewhere.status_code == 403


def test_a_callback_allows_and_can_read_the_request(monitor_app: Callable[..., Flask]) -> None:
    app = monitor_app(JOBQ_MONITOR_AUTH=lambda: request.headers.get("X-Token") == "s3cret")
    app.testing = False
    monitor = Monitor(app)

    assert monitor.get("/stats", headers={"X-Token": "s3cret"}).status_code == 200
    denied = monitor.get("/stats", headers={"X-Token": "guess"})
    assert denied.status_code == 403
    assert denied.get_json()["message"] == "the authorisation callback refused this request"


@pytest.mark.parametrize("answer", [False, None, 1, "yes"])
def test_a_callback_not_returning_true_denies_even_in_testing(
    monitor_app: Callable[..., Flask], answer: object
) -> None:
    app = monitor_app(JOBQ_MONITOR_AUTH=lambda: answer)
    queue = state_for(app).queue
    job = enqueue(queue, "add", 1, 2)
    monitor = Monitor(app)

    for method, path in _EVERY_ENDPOINT:
        response = monitor.request(method, path, json={} if method == "POST" else None)
        assert response.status_code == 403, (method, path)
    assert queue.get(job.id).status is jobq.JobStatus.PENDING


def test_the_callback_is_read_at_request_time(app: Flask) -> None:
    app.testing = False
    monitor = Monitor(app)
    assert monitor.get("/stats").status_code == 403
    app.config["JOBQ_MONITOR_AUTH"] = lambda: True
    assert monitor.get("/stats").status_code == 200


class _JobQWithMonitor(JobQ):
    """JobQ with the proposed ``monitor_auth`` decorator and the ``init_app`` lines,
    as they are to be added to :class:`flask_jobq.JobQ`."""

    _monitor_auth: Callable[[], bool] | None = None

    def init_app(self, app: Flask) -> None:
        if self._monitor_auth is not None:
            app.config.setdefault("JOBQ_MONITOR_AUTH", self._monitor_auth)
        super().init_app(app)
        if BLUEPRINT_NAME not in app.blueprints:
            register_monitor(app)

    def monitor_auth(self, check: Callable[[], bool]) -> Callable[[], bool]:
        previous, self._monitor_auth = self._monitor_auth, check
        for state in list(self._states):
            if state.app.config.get("JOBQ_MONITOR_AUTH") in (None, previous):
                state.app.config["JOBQ_MONITOR_AUTH"] = check
        return check


def test_monitor_auth_decorator_before_and_after_init_app(make_app: AppFactory) -> None:
    ext = _JobQWithMonitor()
    early = make_app("early", extension=ext, JOBQ_START_WORKERS=False)
    own = make_app("own", extension=ext, JOBQ_START_WORKERS=False, JOBQ_MONITOR_AUTH=lambda: True)
    for app in (early, own):
        app.testing = False
    assert Monitor(early).get("/stats").status_code == 403

    @ext.monitor_auth
    def only_admins() -> bool:
        return request.headers.get("X-Admin") == "1"

    late = make_app("late", extension=ext, JOBQ_START_WORKERS=False)
    late.testing = False
    for app in (early, late):
        assert app.config["JOBQ_MONITOR_AUTH"] is only_admins
        assert Monitor(app).get("/stats").status_code == 403
        assert Monitor(app).get("/stats", headers={"X-Admin": "1"}).status_code == 200
    assert Monitor(own).get("/stats").status_code == 200  # the app's own setting wins


# -- registration and configuration ----------------------------------------------------


def test_register_monitor_sets_the_config_defaults(app: Flask) -> None:
    assert app.config["JOBQ_MONITOR_URL_PREFIX"] == "/jobq"
    assert app.config["JOBQ_MONITOR_AUTH"] is None
    assert BLUEPRINT_NAME in app.blueprints


def test_a_custom_prefix(monitor_app: Callable[..., Flask]) -> None:
    app = monitor_app(JOBQ_MONITOR_URL_PREFIX="/admin/queue/")
    monitor = Monitor(app, prefix="/admin/queue")

    assert monitor.get("/stats").status_code == 200
    assert monitor.get("/nope").status_code == 404
    assert monitor.get("/openapi.json").get_json()["servers"] == [{"url": "/admin/queue"}]
    assert app.test_client().get("/jobq/stats").status_code == 404


def test_prefix_none_mounts_no_monitor(make_app: AppFactory) -> None:
    app = make_app(JOBQ_MONITOR_URL_PREFIX=None, JOBQ_START_WORKERS=False)
    if BLUEPRINT_NAME not in app.blueprints:
        assert register_monitor(app) is None
    assert BLUEPRINT_NAME not in app.blueprints
    assert not app.test_client().get("/jobq/stats").is_json


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"JOBQ_MONITOR_URL_PREFIX": "jobq"}, ValueError),
        ({"JOBQ_MONITOR_URL_PREFIX": "/"}, ValueError),
        ({"JOBQ_MONITOR_URL_PREFIX": 3}, ValueError),
        ({"JOBQ_MONITOR_AUTH": "admin"}, TypeError),
    ],
)
def test_bad_settings_are_rejected_naming_the_key(
    make_app: AppFactory, config: dict[str, Any], error: type[Exception]
) -> None:
    def build() -> None:
        app = make_app(JOBQ_START_WORKERS=False, **config)
        register_monitor(app)  # once init_app mounts the monitor, make_app raises already

    with pytest.raises(error, match="JOBQ_MONITOR_"):
        build()


def test_two_apps_each_see_their_own_queue(monitor_app: Callable[..., Flask]) -> None:
    first, second = monitor_app("first"), monitor_app("second")
    enqueue(state_for(first).queue, "add", 1, 2)

    assert len(Monitor(first).get("/jobs").get_json()["jobs"]) == 1
    assert Monitor(second).get("/jobs").get_json()["jobs"] == []


# -- GET /running (real worker threads) -------------------------------------------------


@pytest.fixture
def blocking_app(monitor_app: Callable[..., Flask]) -> Iterator[tuple[Flask, threading.Event]]:
    """A testing app whose workers are started (a testing app starts none by itself)
    and whose ``block`` task waits for the event (set at teardown, so no thread
    outlives the test)."""
    release = threading.Event()
    app = monitor_app("blocking", JOBQ_START_WORKERS=True)
    state_for(app).queue.task("block")(lambda: release.wait(10))
    state_for(app).start_workers()
    yield app, release
    release.set()
    state_for(app).stop_workers(timeout=5.0)


def test_running_shows_what_each_thread_does(blocking_app: tuple[Flask, threading.Event]) -> None:
    app, release = blocking_app
    state = state_for(app)
    monitor = Monitor(app)
    assert monitor.get("/running").status_code == 200
    pool = state.pool
    assert pool is not None
    ids = [enqueue(state.queue, "block").id for _ in range(2)]
    eventually(lambda: len(pool.running()) == 2)

    body = monitor.get("/running").get_json()

    assert body["pool"] == {
        "name": pool.name,
        "alive": True,
        "concurrency": 2,
        "queues": list(pool.queues),
    }
    assert [entry["id"] for entry in body["running"]] == ids
    for entry in body["running"]:
        assert entry["name"] == "block"
        assert entry["attempt"] == 1
        assert entry["thread"].startswith(f"jobq-{pool.name}-worker-")
        assert entry["started_at"] <= time.time()
    assert len({entry["thread"] for entry in body["running"]}) == 2

    release.set()
    eventually(lambda: not pool.running())
    assert monitor.get("/running").get_json()["running"] == []


def test_running_without_a_pool(monitor: Monitor) -> None:
    assert monitor.get("/running").get_json() == {"pool": None, "running": []}


# -- GET /health -----------------------------------------------------------------------


def test_health_without_workers_expected(monitor: Monitor, queue: jobq.DurableQueue) -> None:
    enqueue(queue, "add", 1, 2, run_at=time.time() - 100)

    response = monitor.get("/health")

    assert response.status_code == 200
    body = response.get_json()
    assert body["healthy"] is True
    assert body["queue_reachable"] is True
    assert body["workers_expected"] is False
    assert body["workers_alive"] is False
    assert body["oldest_runnable_age"] >= 100
    assert body["problems"] == []


def test_health_max_age(monitor: Monitor, queue: jobq.DurableQueue) -> None:
    enqueue(queue, "add", 1, 2, run_at=time.time() - 100)

    stale = monitor.get("/health", query_string={"max_age": 50})
    assert stale.status_code == 503
    assert stale.get_json()["max_age"] == 50
    assert "more than max_age 50 s" in stale.get_json()["problems"][0]
    assert monitor.get("/health", query_string={"max_age": 1000}).status_code == 200

    queue.pause("default")  # a paused queue waits on purpose
    assert monitor.get("/health", query_string={"max_age": 50}).status_code == 200


@pytest.mark.parametrize("max_age", ["soon", "-1", "nan", "inf"])
def test_health_rejects_a_bad_max_age(monitor: Monitor, max_age: str) -> None:
    response = monitor.get("/health", query_string={"max_age": max_age})
    assert response.status_code == 400
    assert "max_age" in response.get_json()["message"]


def test_health_with_workers_alive_then_dead(blocking_app: tuple[Flask, threading.Event]) -> None:
    app, _ = blocking_app
    app.testing = False  # a production app expects its workers
    app.config["JOBQ_MONITOR_AUTH"] = lambda: True  # the details
    monitor = Monitor(app)

    healthy = monitor.get("/health")
    assert healthy.status_code == 200
    assert healthy.get_json()["workers_alive"] is True

    pool = state_for(app).pool
    assert pool is not None
    pool.stop(timeout=5.0)  # as if its dispatcher had died: the state still holds it
    sick = monitor.get("/health")
    assert sick.status_code == 503
    assert sick.get_json()["workers_alive"] is False
    assert sick.get_json()["problems"] == ["no worker pool is running in this process"]


def test_health_when_the_database_fails(
    monitor: Monitor, queue: jobq.DurableQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> Stats:
        raise jobq.StorageError("disk I/O error")

    def broken_age() -> float:
        raise jobq.StorageError("disk I/O error")

    monkeypatch.setattr(queue, "stats", broken)
    monkeypatch.setattr(queue, "oldest_runnable_age", broken_age)

    response = monitor.get("/health")

    assert response.status_code == 503
    assert response.get_json()["queue_reachable"] is False
    assert "disk I/O error" in response.get_json()["problems"][0]
    stats = monitor.get("/stats")
    assert stats.status_code == 503
    assert "disk I/O error" in stats.get_json()["message"]


# -- OpenAPI ---------------------------------------------------------------------------


def test_openapi_is_served_and_describes_every_route(app: Flask, monitor: Monitor) -> None:
    served = monitor.get("/openapi.json").get_json()
    assert served == SPEC
    assert served["openapi"].startswith("3.")

    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/jobq")), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith(f"{BLUEPRINT_NAME}.")
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    documented = {
        (path, method) for path, operations in SPEC["paths"].items() for method in operations
    }
    assert routes == documented
    for path, operations in SPEC["paths"].items():
        for method, operation in operations.items():
            assert "403" in operation["responses"], (path, method)
            for name in re.findall(r"\{(\w+)\}", path):
                assert any(
                    p["name"] == name and p["in"] == "path" for p in operation.get("parameters", [])
                ), (path, name)


def test_every_kind_of_response_fits_the_openapi_schemas(
    blocking_app: tuple[Flask, threading.Event],
) -> None:
    """A tour of every endpoint and error; ``Monitor`` validates each response."""
    pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema({"$defs": SPEC["components"]["schemas"]})
    app, release = blocking_app
    queue = state_for(app).queue
    monitor = Monitor(app)
    failed = enqueue(queue, "fail")
    reported = enqueue(queue, "report", 2)
    blocked = enqueue(queue, "block")
    pool = state_for(app).start_workers()
    eventually(lambda: len(pool.running()) == 1)
    eventually(lambda: queue.get(failed.id).status is jobq.JobStatus.FAILED)
    eventually(lambda: queue.get(reported.id).status is jobq.JobStatus.COMPLETED)
    enqueue(queue, "add", 1, 2, delay=3600)

    for path in (
        "/stats",
        "/jobs",
        "/jobs?limit=1",
        "/jobs?status=bad",
        f"/jobs/{failed.id}",
        f"/jobs/{reported.id}",
        f"/jobs/{blocked.id}",
        "/jobs/999",
        "/running",
        "/health",
        "/health?max_age=0",
        "/health?max_age=x",
        "/openapi.json",
        "/nope",
        "/jobs/1/cancel",
    ):
        monitor.get(path)
    for path in (
        f"/jobs/{failed.id}/retry",
        f"/jobs/{reported.id}/retry",
        "/jobs/999/retry",
        f"/jobs/{blocked.id}/cancel",
        "/jobs/999/cancel",
        "/queues/x/pause",
        "/queues/x/resume",
    ):
        monitor.post(path)
    monitor.post("/queues/x/pause", data={"a": "b"})
    monitor.post("/queues/x/pause", data="[]", content_type="application/json")
    monitor.request("DELETE", "/stats")
    queue.schedule("add", every=60, name="a/b c", args=[1, 2])
    queue.schedule("report", cron="*/5 * * * *", tz="Asia/Kolkata", kwargs={"n": 1})
    queue.fire_due_schedules()
    monitor.get("/schedules")
    for action in ("pause", "resume", "trigger"):
        for name in ("a%2Fb%20c", "report", "nope"):
            monitor.post(f"/schedules/{name}/{action}")
    monitor.post("/schedules/report/trigger", data="[]", content_type="application/json")
    monitor.post("/schedules/report/pause", data={"a": "b"})
    assert queue.fire_due_schedules(now=time.time() + 3600)  # a last fire to show
    monitor.get("/schedules")
    release.set()
    app.testing = False
    assert monitor.get("/stats").status_code == 403
    assert monitor.responses == 39


def test_openapi_spec_is_a_fresh_copy() -> None:
    spec = openapi_spec("/x")
    spec["paths"].clear()
    assert openapi_spec("/y")["paths"]
    assert openapi_spec("/y")["servers"] == [{"url": "/y"}]
