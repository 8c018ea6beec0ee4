"""Sentry sees one event per job that failed for good: a real ``sentry_sdk`` client
with an in-process transport (no network) and a real worker pool."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

sentry_sdk = pytest.importorskip("sentry_sdk")

from sentry_sdk.envelope import Envelope  # noqa: E402
from sentry_sdk.transport import Transport  # noqa: E402

from jobq import DurableQueue, JobStatus  # noqa: E402
from jobq.sentry import JobqIntegration  # noqa: E402
from tests.helpers import BOUNDED_WAIT, MakeQueue, eventually  # noqa: E402


class CollectingTransport(Transport):
    """Keeps the envelopes the client would send."""

    def __init__(self) -> None:
        super().__init__({"dsn": "https://public@sentry.invalid/1"})
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        found = [envelope.get_event() for envelope in self.envelopes]
        return [event for event in found if event is not None]


@pytest.fixture
def sentry(request: pytest.FixtureRequest) -> Iterator[CollectingTransport]:
    transport = CollectingTransport()
    options = getattr(request, "param", {})
    sentry_sdk.init(
        dsn="https://public@sentry.invalid/1",
        transport=transport,
        integrations=[JobqIntegration(**options)],
    )
    try:
        yield transport
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)


def flaky_task(queue: DurableQueue) -> Any:
    @queue.task("billing.charge", max_attempts=3, backoff=0)
    def charge_card(customer: int) -> None:
        raise ConnectionError(f"the card gateway refused customer {customer}")

    return charge_card


def run_to_failure(queue: DurableQueue, job_id: int) -> None:
    pool = queue.start_workers(concurrency=2)
    try:
        eventually(lambda: queue.get(job_id).status is JobStatus.FAILED)
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)  # joins the dispatcher, which logs


def job_events(transport: CollectingTransport) -> list[dict[str, Any]]:
    return [e for e in transport.events() if "jobq.job_id" in e.get("tags", {})]


def test_one_event_per_final_failure_with_tags_and_the_tasks_traceback(
    make_queue: MakeQueue, sentry: CollectingTransport
) -> None:
    queue = make_queue(poll_interval=0.005)
    job = flaky_task(queue).enqueue(42)
    run_to_failure(queue, job.id)
    sentry_sdk.flush()

    assert len(transport_events := sentry.events()) == 1, transport_events
    (event,) = job_events(sentry)
    assert event["level"] == "error"
    assert event["tags"] == {
        "jobq.task": "billing.charge",
        "jobq.job_id": str(job.id),
        "jobq.attempt": "3",
        "jobq.queue": "default",
    }
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "ConnectionError"
    assert exception["value"] == "the card gateway refused customer 42"
    frames = exception["stacktrace"]["frames"]
    assert frames[-1]["function"] == "charge_card"
    assert frames[-1]["filename"].endswith("test_sentry.py")
    assert "raise ConnectionError" in frames[-1]["context_line"]
    # The retried attempts were breadcrumbs, not events.
    crumbs = [
        c["message"] for c in event["breadcrumbs"]["values"] if c.get("category") == "jobq.jobs"
    ]
    assert sum("will retry" in message for message in crumbs) == 2


@pytest.mark.parametrize("sentry", [{"capture_retries": True}], indirect=True)
def test_retried_attempts_are_events_when_asked(
    make_queue: MakeQueue, sentry: CollectingTransport
) -> None:
    queue = make_queue(poll_interval=0.005)
    job = flaky_task(queue).enqueue(7)
    run_to_failure(queue, job.id)
    sentry_sdk.flush()

    events = job_events(sentry)
    assert len(sentry.events()) == len(events) == 3
    assert [(e["level"], e["tags"]["jobq.attempt"]) for e in events] == [
        ("warning", "1"),
        ("warning", "2"),
        ("error", "3"),
    ]
    for event in events:
        assert event["tags"]["jobq.job_id"] == str(job.id)
        frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
        assert frames[-1]["function"] == "charge_card"


def test_a_completed_job_sends_nothing(make_queue: MakeQueue, sentry: CollectingTransport) -> None:
    queue = make_queue()

    @queue.task("fine")
    def fine() -> int:
        return 1

    fine.enqueue()
    assert queue.run_until_empty() == 1
    sentry_sdk.flush()
    assert sentry.events() == []
