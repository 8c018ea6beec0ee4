"""examples/newsletter works as its docs say, against its real local SMTP server: no mocks.

The emails go out through jobq.handlers.email, installed by the extension from
the example's JOBQ_EMAIL; the handler's own tests are in
tests/integration/handlers/test_email.py.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask

from jobq.handlers import email
from tests.helpers import ROOT, eventually, wait_for

EXAMPLE = ROOT / "examples" / "newsletter"
MODULE_NAME = "newsletter_example_app"
SUBPROCESS_TIMEOUT = 90.0


@pytest.fixture
def newsletter(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """examples/newsletter/app.py as a module (its folder on sys.path, as when run)."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    module = sys.modules.get(MODULE_NAME)
    if module is None:
        spec = importlib.util.spec_from_file_location(MODULE_NAME, EXAMPLE / "app.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE_NAME] = module
        spec.loader.exec_module(module)
    return module


@pytest.fixture
def make_app(newsletter: ModuleType, tmp_path: Path) -> Iterator[Any]:
    """Build apps on a tmp_path database; every one is closed (workers, SMTP) afterwards."""
    apps: list[Flask] = []

    def make(config: dict[str, Any] | None = None, **kwargs: Any) -> Flask:
        app: Flask = newsletter.create_app(
            {"JOBQ_DATABASE": str(tmp_path / f"jobs-{len(apps)}.db"), **(config or {})}, **kwargs
        )
        apps.append(app)
        return app

    yield make
    for app in apps:
        newsletter.close_app(app)


def wait_until_done(app: Flask, timeout: float = 20.0) -> dict[str, Any]:
    client = app.test_client()
    progress: dict[str, Any] = {}

    def done() -> bool:
        nonlocal progress
        progress = client.get("/newsletter/progress").get_json()
        return bool(progress["done"])

    wait_for(done, "the newsletter was sent", timeout, interval=0.02)
    return progress


def test_check_runs_the_whole_flow_and_reports_its_numbers() -> None:
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE / "app.py"), "--check", "--count", "2000"],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        cwd=ROOT,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "all checks passed" in completed.stdout
    assert "FAIL" not in completed.stdout
    line = next(line for line in completed.stdout.splitlines() if line.startswith("result: "))
    result = json.loads(line.removeprefix("result: "))
    assert result["queued"] == result["delivered"] == result["distinct_recipients"] == 2000
    assert result["refused_451"] == 4  # user500, user1000, user1500, user2000
    assert result["failed"] == 0
    assert result["report"] == "2,000 sent, 0 failed"  # the batch callback, once
    assert 1 <= result["smtp_connections"] <= 4 + 4  # one per worker, reused
    assert result["per_second"] > 0


@pytest.mark.parametrize(
    ("request_kwargs", "message"),
    [
        ({}, "missing JSON body"),
        ({"data": "{subject: ", "content_type": "application/json"}, "malformed JSON"),
        ({"data": '{"subject": "x", "recipients": 1}'}, "Content-Type: application/json"),
        ({"json": ["hello", 3]}, "expected a JSON object"),
        ({"json": {"subject": "hi", "recipients": 3, "cc": "x"}}, "unknown field(s) 'cc'"),
        ({"json": {"recipients": 3}}, "'subject' must be a non-empty string"),
        ({"json": {"subject": "   ", "recipients": 3}}, "'subject' must be a non-empty string"),
        ({"json": {"subject": "x" * 201, "recipients": 3}}, "at most 200 characters"),
        ({"json": {"subject": "hi\r\nBcc: all@example.com", "recipients": 3}}, "line breaks"),
        ({"json": {"subject": "hi\u2028there", "recipients": 3}}, "line breaks"),
        ({"json": {"subject": "hi\x00", "recipients": 3}}, "control characters"),
        ({"json": {"subject": "hi"}}, "'recipients' must be an integer from 1 to 10000"),
        ({"json": {"subject": "hi", "recipients": "10"}}, "must be an integer"),
        ({"json": {"subject": "hi", "recipients": True}}, "must be an integer"),
        ({"json": {"subject": "hi", "recipients": 2.5}}, "must be an integer"),
        ({"json": {"subject": "hi", "recipients": 0}}, "from 1 to 10000, got 0"),
        ({"json": {"subject": "hi", "recipients": 10_001}}, "from 1 to 10000, got 10001"),
    ],
)
def test_a_bad_newsletter_request_gets_a_json_400(
    make_app: Any, request_kwargs: dict[str, Any], message: str
) -> None:
    app = make_app()
    response = app.test_client().post("/newsletter", **request_kwargs)
    assert response.status_code == 400
    assert response.is_json
    assert message in response.get_json()["message"]
    assert app.extensions["jobq"].queue.stats().queues == {}  # nothing was queued


@pytest.mark.parametrize(
    "subject",
    [
        "=?UTF-8?Q?Hello=0D=0AReply-To:_attacker@evil.example=0D=0A=0D=0ANew_body?=",
        "=?utf-8?q?Hello=0D=0ABcc:_x@evil.example?=",
        "=?UTF-8?B?SGVsbG8NCkJjYzogeEBldmlsLmV4YW1wbGU=?=",  # Hello\r\nBcc: x@evil.example
        "=?UTF-8?Q?Hello=0D?= =?UTF-8?Q?=0AContent-Type:_text/html?=",
        "News =?UTF-8?Q?=0A=0A<b>New_body</b>?=",
    ],
)
def test_an_encoded_header_injection_gets_a_400_and_sends_nothing(
    make_app: Any, newsletter: ModuleType, subject: str
) -> None:
    app = make_app()
    response = app.test_client().post("/newsletter", json={"subject": subject, "recipients": 3})
    assert response.status_code == 400
    message = response.get_json()["message"]
    assert message.startswith("'subject' cannot be sent: subject must not contain line breaks")
    assert "encoded words" in message
    assert app.extensions["jobq"].queue.stats().queues == {}  # nothing was queued
    assert newsletter.smtp_server_of(app).stats().received == 0


def test_a_non_ascii_subject_arrives_as_written(make_app: Any, newsletter: ModuleType) -> None:
    app = make_app(refuse_every=0)
    subject = "Gr\u00fc\u00dfe from Z\u00fcrich \u2713, is 2+2 =? 4"
    reply = app.test_client().post("/newsletter", json={"subject": subject, "recipients": 2})
    assert reply.status_code == 202
    progress = wait_until_done(app)
    assert (progress["jobs"]["completed"], progress["jobs"]["failed"]) == (2, 0)
    assert {d.subject for d in newsletter.smtp_server_of(app).deliveries()} == {subject}


def test_a_small_newsletter_is_delivered_once_per_recipient(
    make_app: Any, newsletter: ModuleType
) -> None:
    app = make_app(refuse_every=10)
    client = app.test_client()
    assert "POST /newsletter" in client.get("/").get_json()["endpoints"]

    request = {"subject": "  Hello, 50 readers ", "recipients": 50}
    response = client.post("/newsletter", json=request)
    assert response.status_code == 202
    body = response.get_json()
    assert (body["queued"], body["subject"]) == (50, "Hello, 50 readers")
    assert body["progress"] == response.headers["Location"] == "/newsletter/progress"

    progress = wait_until_done(app)
    assert progress["jobs"]["completed"] == 50
    assert progress["jobs"]["failed"] == 0
    assert progress["smtp_server"]["received"] == 50
    assert progress["smtp_server"]["refused_temporarily"] == 5

    server = newsletter.smtp_server_of(app)
    deliveries = server.deliveries()
    recipients = [delivery.recipient for delivery in deliveries]
    assert sorted(recipients) == sorted(f"user{n}@example.com" for n in range(1, 51))
    assert len(set(recipients)) == len(recipients)  # no duplicates
    assert {d.subject for d in deliveries} == {"Hello, 50 readers"}
    assert {d.sender for d in deliveries} == {newsletter.SENDER}
    first = next(d for d in deliveries if d.recipient == "user7@example.com")
    assert first.body.startswith("Hello user7,")
    # The refused ones were delivered on their second attempt.
    assert server.refused_recipients() == {f"user{n}@example.com" for n in range(10, 51, 10)}
    # They are the email handler's jobs, in the newsletter queue.
    queue = app.extensions["jobq"].queue
    completed = queue.list(status="completed", queue="newsletter", limit=100)
    assert {(job.name, job.queue) for job in completed} == {(email.TASK_NAME, "newsletter")}
    assert {job.batch_id for job in completed} == {body["batch"]}
    attempts = {job.decoded_payload()["kwargs"]["to"]: job.attempts for job in completed}
    assert attempts["user10@example.com"] == 2
    assert attempts["user7@example.com"] == 1
    assert all(job.decoded_result()["recipients"] == 1 for job in completed)
    # Connections were reused: at most one per worker thread (kept after a 451).
    connections = newsletter.mailer_of(app).connections_opened
    assert 1 <= connections <= newsletter.CONCURRENCY
    assert server.stats().connections == connections


def test_a_permanent_refusal_fails_the_job_at_once(make_app: Any) -> None:
    app = make_app(refuse_every=0, reject_every=5)
    client = app.test_client()
    answer = client.post("/newsletter", json={"subject": "hi", "recipients": 12})
    assert answer.status_code == 202
    progress = wait_until_done(app)
    assert (progress["jobs"]["completed"], progress["jobs"]["failed"]) == (10, 2)
    report: dict[str, Any] = {}

    def reported() -> bool:
        nonlocal report
        report = client.get(answer.get_json()["report"]).get_json()
        return report["report"] is not None

    wait_for(reported, "the batch callback reported", 20.0, interval=0.02)
    assert report["report"] == "10 sent, 2 failed"
    assert report["jobs"] == {
        "total": 12,
        "pending": 0,
        "processing": 0,
        "completed": 10,
        "failed": 2,
        "cancelled": 0,
    }
    assert client.get("/newsletter/999999").status_code == 404
    assert progress["smtp_server"]["rejected"] == 2
    failed = app.extensions["jobq"].queue.list(status="failed")
    assert sorted(job.decoded_payload()["kwargs"]["to"] for job in failed) == [
        "user10@example.com",
        "user5@example.com",
    ]
    for job in failed:
        assert job.attempts == 1  # jobq.Fail: no retry
        assert job.error is not None
        assert "550" in job.error.message


def test_the_monitor_is_open_to_local_requests_only(make_app: Any) -> None:
    app = make_app()
    client = app.test_client()
    assert client.get("/jobq/stats").status_code == 200
    remote = client.get("/jobq/stats", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert remote.status_code == 403


def test_jobs_survive_a_restart_of_the_app(
    make_app: Any, newsletter: ModuleType, tmp_path: Path
) -> None:
    database = str(tmp_path / "restart.db")
    first = make_app({"JOBQ_DATABASE": database, "JOBQ_START_WORKERS": False})
    reply = first.test_client().post("/newsletter", json={"subject": "hi", "recipients": 20})
    assert reply.status_code == 202
    newsletter.close_app(first)  # no worker ran: nothing was sent
    assert newsletter.smtp_server_of(first).stats().received == 0

    second = make_app({"JOBQ_DATABASE": database})  # with a new SMTP server
    progress = wait_until_done(second)
    assert (progress["jobs"]["completed"], progress["jobs"]["failed"]) == (20, 0)
    received = [d.recipient for d in newsletter.smtp_server_of(second).deliveries()]
    assert sorted(received) == sorted(f"user{n}@example.com" for n in range(1, 21))


def test_an_unreachable_server_is_retried_with_backoff_then_fails(
    make_app: Any, newsletter: ModuleType
) -> None:
    app = make_app()
    newsletter.smtp_server_of(app).stop()
    client = app.test_client()
    assert client.post("/newsletter", json={"subject": "hi", "recipients": 1}).status_code == 202
    queue = app.extensions["jobq"].queue

    def postponed() -> bool:
        job = queue.get(1)
        return bool(job.status.value == "pending" and job.attempts >= 1)

    eventually(postponed)
    job = queue.get(1)
    assert job.error is not None
    assert "cannot reach SMTP server" in job.error.message  # a TransientError: tried again
    assert job.max_attempts == newsletter.MAX_ATTEMPTS


def test_an_unreachable_server_fails_the_job_after_max_attempts(
    make_app: Any, newsletter: ModuleType
) -> None:
    # JOBQ_EMAIL keys given by the app's config are merged into the example's.
    app = make_app({"JOBQ_EMAIL": {"retry_delay": 0, "max_attempts": 2}})
    newsletter.smtp_server_of(app).stop()
    client = app.test_client()
    assert client.post("/newsletter", json={"subject": "hi", "recipients": 1}).status_code == 202
    progress = wait_until_done(app)
    assert progress["jobs"]["failed"] == 1
    job = app.extensions["jobq"].queue.get(1)
    assert job.attempts == 2
    assert job.error is not None
    assert "cannot reach SMTP server" in job.error.message


@pytest.mark.redis
def test_check_runs_on_redis_under_a_prefix_of_its_own() -> None:
    from tests.helpers import require_redis

    url = require_redis()
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE / "app.py"), "--check", "--count", "300", "--db", url],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        cwd=ROOT,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "all checks passed" in completed.stdout
    assert f"jobs in {url}?prefix=jobq-newsletter-check-" in completed.stdout
    line = next(line for line in completed.stdout.splitlines() if line.startswith("result: "))
    result = json.loads(line.removeprefix("result: "))
    assert result["delivered"] == result["distinct_recipients"] == 300
    assert result["report"] == "300 sent, 0 failed"


def test_the_database_comes_from_the_environment(
    newsletter: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JOBQ_DATABASE", str(tmp_path / "from-env.db"))
    app = newsletter.create_app({"JOBQ_START_WORKERS": False})
    try:
        assert app.extensions["jobq"].settings.database == str(tmp_path / "from-env.db")
    finally:
        newsletter.close_app(app)
    assert newsletter.check_database(None, "/scratch") == "/scratch/newsletter.db"
    given = "redis://localhost:6379/0?durability=ignore"
    assert newsletter.check_database(given, "/s").startswith(
        f"{given}&prefix=jobq-newsletter-check-"
    )
    assert newsletter.check_database("redis://h/0?prefix=mine:", "/s") == "redis://h/0?prefix=mine:"
    assert newsletter.shown_location("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert newsletter.shown_location("redis://u:s3cret@h/0") == "redis://u:***@h/0"
