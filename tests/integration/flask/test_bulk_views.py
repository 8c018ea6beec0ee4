"""The monitor's job filters and bulk actions: GET /jobs with every filter,
GET /jobs/count, POST /jobs/retry|cancel|delete, with dry runs, expected counts
and the POST rules. Every answer is checked against the OpenAPI description
(``Monitor``)."""

from __future__ import annotations

import jobq
from jobq import JobStatus
from tests.helpers import Monitor, enqueue


def _ids(body: dict[str, object]) -> list[int]:
    return [job["id"] for job in body["jobs"]]  # type: ignore[attr-defined, index]


def test_jobs_filter_by_argument_with_json_values_and_positions(
    monitor: Monitor, queue: jobq.DurableQueue
) -> None:
    one = enqueue(queue, "add", 1, 2).id
    text = enqueue(queue, "add", "1", 2).id
    keyword = queue.enqueue("add", a=1, b=5).id
    enqueue(queue, "report", 1)
    # Without the task's name only keyword arguments are known.
    assert _ids(monitor.get("/jobs?arg=a:1").get_json()) == [keyword]
    assert _ids(monitor.get("/jobs?name=add&arg=a:1").get_json()) == [one, keyword]
    assert _ids(monitor.get('/jobs?name=add&arg=a:"1"').get_json()) == [text]
    assert _ids(monitor.get("/jobs?name=add&arg=a:1&arg=b:5").get_json()) == [keyword]
    assert monitor.get("/jobs/count?name=add&arg=a:1").get_json() == {"count": 2}
    assert monitor.get("/jobs/count?queue=other").get_json() == {"count": 1}
    page = monitor.get("/jobs?name=add&limit=2&order=desc").get_json()
    assert _ids(page) == [keyword, text]
    assert page["next_after"] == text


def test_jobs_filter_by_status_list_and_times(monitor: Monitor, queue: jobq.DurableQueue) -> None:
    first = enqueue(queue, "add", 1, 2)
    cancelled = enqueue(queue, "add", 3, 4)
    queue.cancel(cancelled.id)
    both = monitor.get("/jobs?status=pending&status=cancelled").get_json()
    assert _ids(both) == [first.id, cancelled.id]
    created = first.created_at
    assert _ids(monitor.get(f"/jobs?created_before={created + 1000}").get_json())
    assert _ids(monitor.get(f"/jobs?created_after={created + 1000}").get_json()) == []
    assert monitor.get("/jobs/count?older_than=100000").get_json() == {"count": 0}


def test_bad_filters_are_400_with_a_message(monitor: Monitor) -> None:
    for query, words in (
        ("status=done", "statuses"),
        ("arg=user_id", "key:value"),
        ("arg=user id:1", "identifier"),
        ("arg=a:[1]", "JSON string, number"),
        ("created_after=soon", "created_after"),
        ("older_than=-5", "older_than"),
        ("limit=0", "limit"),
        ("colour=red", "unknown query parameter"),
    ):
        response = monitor.get(f"/jobs?{query}")
        assert response.status_code == 400, query
        assert words in response.get_json()["message"], query
    assert monitor.get("/jobs/count?after=3").status_code == 400


def test_bulk_cancel_retry_delete_with_dry_run_and_expect(
    monitor: Monitor, queue: jobq.DurableQueue
) -> None:
    for n in range(5):
        enqueue(queue, "add", n, 1)
    enqueue(queue, "report", 7)
    dry = monitor.post("/jobs/cancel", json={"name": "add", "dry_run": True}).get_json()
    assert dry == {"action": "cancel", "dry_run": True, "matched": 5, "changed": 0, "skipped": 0}
    assert queue.count(status="pending") == 6
    stale = monitor.post("/jobs/cancel", json={"name": "add", "expect": 4})
    assert stale.status_code == 409
    assert "5 jobs match now" in stale.get_json()["message"]
    done = monitor.post("/jobs/cancel", json={"name": "add", "expect": 5}).get_json()
    assert done["changed"] == 5
    assert queue.count(status="cancelled") == 5
    body = {"status": ["cancelled"], "args": {"a": 3}, "name": "add"}
    assert monitor.post("/jobs/retry", json=body).get_json()["changed"] == 1
    assert queue.find(status="pending", name="add")[0].decoded_payload()["args"] == [3, 1]
    deleted = monitor.post("/jobs/delete", json={"status": "cancelled"}).get_json()
    assert deleted["changed"] == 4
    assert queue.count() == 2
    assert queue.stats().queues["default"].counts[JobStatus.CANCELLED] == 0


def test_bulk_actions_refuse_without_a_filter_or_body(
    monitor: Monitor, queue: jobq.DurableQueue
) -> None:
    enqueue(queue, "add", 1, 2)
    for action in ("retry", "cancel", "delete"):
        empty = monitor.post(f"/jobs/{action}", json={})
        assert empty.status_code == 400
        assert "give at least one filter" in empty.get_json()["message"]
        header_only = monitor.post(f"/jobs/{action}", headers={"X-Jobq-Request": "1"})
        assert header_only.status_code == 400
        form = monitor.post(f"/jobs/{action}", data={"status": "pending"})
        assert form.status_code == 415
    for body, words in (
        ({"status": "pending", "colour": "red"}, "unknown member"),
        ({"status": "pending", "dry_run": "yes"}, "dry_run"),
        ({"status": "pending", "expect": -1}, "expect"),
        ({"status": 3}, "status"),
        ({"older_than": "1h"}, "older_than"),
        ({"args": [1]}, "args"),
        ({"args": {"a": [1]}}, "str, int, float, bool or None"),
    ):
        response = monitor.post("/jobs/delete", json=body)
        assert response.status_code == 400, body
        assert words in response.get_json()["message"], body
    assert queue.count() == 1
