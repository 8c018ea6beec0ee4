"""Sentry in a Flask app: the extension's workers report a job's final failure once,
tagged, through a real ``sentry_sdk`` client with an in-process transport."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("sentry_sdk")

import sentry_sdk

import jobq
from flask_jobq import JobQ, state_for
from jobq.sentry import JobqIntegration
from tests.helpers import AppFactory, eventually
from tests.integration.test_sentry import CollectingTransport


@pytest.fixture
def sentry() -> Iterator[CollectingTransport]:
    transport = CollectingTransport()
    sentry_sdk.init(
        dsn="https://public@sentry.invalid/1", transport=transport, integrations=[JobqIntegration()]
    )
    try:
        yield transport
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)


def test_a_flask_apps_failed_job_is_one_tagged_event(
    make_app: AppFactory, ext: JobQ, sentry: CollectingTransport
) -> None:
    @ext.task("mail.send", max_attempts=2, backoff=0)
    def send_mail(to: str) -> None:
        raise TimeoutError(f"the SMTP server did not answer for {to}")

    app = make_app(TESTING=False)
    state_for(app).start_workers()
    with app.app_context():
        job = send_mail.enqueue("ada@example.com")
    queue = state_for(app).queue
    eventually(lambda: queue.get(job.id).status is jobq.JobStatus.FAILED)
    state_for(app).stop_workers(timeout=5.0)
    sentry_sdk.flush()

    (event,) = sentry.events()
    assert event["tags"] == {
        "jobq.task": "mail.send",
        "jobq.job_id": str(job.id),
        "jobq.attempt": "2",
        "jobq.queue": "default",
    }
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    assert frames[-1]["function"] == "send_mail"
