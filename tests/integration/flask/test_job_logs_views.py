"""A job's log lines in the monitor (``GET /jobq/jobs/<id>/logs``) and under
``flask jobq logs``; answers are checked against the OpenAPI description."""

from __future__ import annotations

import json

import pytest
from flask import Flask

import jobq
from tests.helpers import Monitor


def _chatty(lines: int) -> None:
    job = jobq.current_job()
    for n in range(lines):
        job.log(f"line {n} of attempt {job.attempt}\x1b[2J")


@pytest.fixture
def chatty(queue: jobq.DurableQueue) -> jobq.Task[..., None]:
    return queue.task("chatty", max_attempts=1)(_chatty)


def test_the_logs_route_shows_the_kept_lines_and_how_many_were_dropped(
    monitor: Monitor, queue: jobq.DurableQueue, chatty: jobq.Task[..., None]
) -> None:
    job = chatty.enqueue(105)
    queue.run_until_empty()

    body = monitor.get(f"/jobs/{job.id}/logs").get_json()

    assert (body["job_id"], body["dropped"], len(body["lines"])) == (job.id, 5, 100)
    first = body["lines"][0]
    assert set(first) == {"number", "attempt", "logged_at", "message"}
    assert (first["number"], first["attempt"]) == (6, 1)
    assert first["message"] == "line 5 of attempt 1\x1b[2J"  # JSON carries it as it is
    assert first["logged_at"] == pytest.approx(queue.clock.now(), abs=60)
    assert body["lines"][-1]["number"] == 105


def test_a_job_without_lines_answers_an_empty_list(
    monitor: Monitor, queue: jobq.DurableQueue, chatty: jobq.Task[..., None]
) -> None:
    job = chatty.enqueue(0)
    assert monitor.get(f"/jobs/{job.id}/logs").get_json() == {
        "job_id": job.id,
        "dropped": 0,
        "lines": [],
    }


@pytest.mark.parametrize("path", ["/jobs/999/logs", f"/jobs/{2**70}/logs", "/jobs/-1/logs"])
def test_the_logs_of_an_unknown_job_are_404(monitor: Monitor, path: str) -> None:
    response = monitor.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"] == "Not Found"


def test_the_logs_route_needs_authorisation(monitor_app: object) -> None:
    app = monitor_app(JOBQ_MONITOR_AUTH=lambda: False)  # type: ignore[operator]
    assert Monitor(app).get("/jobs/1/logs").status_code == 403


def test_flask_jobq_logs_prints_lines_safe_for_a_terminal(
    app: Flask, queue: jobq.DurableQueue, chatty: jobq.Task[..., None]
) -> None:
    job = chatty.enqueue(2)
    queue.run_until_empty()
    runner = app.test_cli_runner()

    text = runner.invoke(args=["jobq", "logs", str(job.id)])
    assert text.exit_code == 0, text.output
    rows = text.output.splitlines()
    assert len(rows) == 2
    assert rows[0].endswith("attempt 1  line 0 of attempt 1\\x1b[2J")
    assert "\x1b" not in text.output

    as_json = runner.invoke(args=["jobq", "logs", str(job.id), "--json"])
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.output)
    assert [line["message"] for line in body["lines"]] == [
        "line 0 of attempt 1\x1b[2J",
        "line 1 of attempt 1\x1b[2J",
    ]

    missing = runner.invoke(args=["jobq", "logs", "999"])
    assert missing.exit_code != 0
    assert "no job with id 999" in missing.output
