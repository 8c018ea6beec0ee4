"""A job's attempts and timeline (``GET /jobq/jobs/<id>/attempts``) and the
throughput counters (``GET /jobq/throughput``) in the monitor; answers are checked
against the OpenAPI description."""

from __future__ import annotations

import pytest

import jobq
from tests.helpers import Monitor


def test_the_attempts_route_shows_each_error_and_the_timeline(
    monitor: Monitor, queue: jobq.DurableQueue
) -> None:
    @queue.task("flaky", max_attempts=2, backoff=0)
    def flaky() -> str:
        if jobq.current_job().attempt == 1:
            raise RuntimeError("<script>alert(1)</script>")
        return "ok"

    job = flaky.enqueue()
    queue.run_until_empty()
    queue.run_until_empty()

    body = monitor.get(f"/jobs/{job.id}/attempts").get_json()

    assert body["job_id"] == job.id
    (attempt,) = body["attempts"]
    assert (attempt["attempt"], attempt["outcome"]) == (1, "failed")
    assert attempt["error"]["type"] == "RuntimeError"
    assert attempt["error"]["message"] == "<script>alert(1)</script>"  # JSON, as it is
    assert "Traceback" in attempt["error"]["traceback"]
    assert attempt["lease_owner"]
    assert [event["kind"] for event in body["timeline"]] == [
        "enqueued",
        "claimed",
        "failed",
        "claimed",
        "completed",
    ]
    assert body["timeline"][0]["attempt"] is None


def test_a_job_that_never_failed_has_no_attempts(
    monitor: Monitor, queue: jobq.DurableQueue
) -> None:
    job = queue.enqueue("add", 1, 2)
    body = monitor.get(f"/jobs/{job.id}/attempts").get_json()
    assert body["attempts"] == []
    assert [event["kind"] for event in body["timeline"]] == ["enqueued"]


@pytest.mark.parametrize("path", ["/jobs/999/attempts", f"/jobs/{2**70}/attempts"])
def test_the_attempts_of_an_unknown_job_are_404(monitor: Monitor, path: str) -> None:
    assert monitor.get(path).status_code == 404


def test_the_throughput_route_counts_jobs_as_they_end(
    monitor: Monitor, queue: jobq.DurableQueue
) -> None:
    for n in range(3):
        queue.enqueue("add", n, n)
    queue.enqueue("fail")
    queue.enqueue("report", 1)  # the "other" queue
    queue.run_until_empty()

    body = monitor.get("/throughput?last=120").get_json()
    assert (body["last"], body["bucket"], body["queue"]) == (120.0, 60, None)
    points = body["points"]
    assert 3 <= len(points) <= 4  # every minute overlapping the last two, zeros included
    starts = [point["start"] for point in points]
    assert starts == [starts[0] + 60 * n for n in range(len(starts))]
    assert sum(p["completed"] for p in points) == 4
    assert sum(p["failed"] for p in points) == 1

    other = monitor.get("/throughput?last=60&queue=other").get_json()["points"]
    assert sum(p["completed"] for p in other) == 1
    (hour,) = monitor.get("/throughput?last=60&bucket=3600").get_json()["points"][-1:]
    assert hour["start"] % 3600 == 0


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("bucket=30", "bucket must be 60 or 3600"),
        ("last=0", "last must be more than 0"),
        ("last=nan", "last must be more than 0"),
        ("last=soon", "last must be a number"),
        ("last=999999", "at most 172800"),
        ("since=1", "unknown query parameter"),
    ],
)
def test_bad_throughput_queries_are_400(monitor: Monitor, query: str, message: str) -> None:
    response = monitor.get(f"/throughput?{query}")
    assert response.status_code == 400
    assert message in response.get_json()["message"]
