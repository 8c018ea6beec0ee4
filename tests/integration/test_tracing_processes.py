"""A trace across two processes: one enqueues inside a request's span, a real
``jobq worker`` process runs the jobs; each exports its spans with the OpenTelemetry
SDK's in-memory exporter, and the run spans must link to the enqueue spans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from jobq import DurableQueue, JobStatus
from tests.helpers import ROOT, started_process, wait_for

DEADLINE = 30.0  # real seconds any one step may take on a busy machine


def _by_name(spans: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [span for span in spans if span["name"] == name]


def _runs_of(spans: list[dict[str, Any]], job_id: int) -> list[dict[str, Any]]:
    runs = [s for s in spans if s["attributes"].get("messaging.message.id") == str(job_id)]
    return sorted(
        (s for s in runs if s["kind"] == "CONSUMER"), key=lambda s: s["attributes"]["jobq.attempt"]
    )


def _link_to(span: dict[str, Any]) -> dict[str, str]:
    return {"trace_id": span["trace_id"], "span_id": span["span_id"]}


def test_a_job_run_in_a_worker_process_links_to_the_span_that_enqueued_it(tmp_path: Path) -> None:
    database = str(tmp_path / "jobs.db")
    DurableQueue(database).close()  # the worker's --db must exist
    produced = subprocess.run(
        [sys.executable, "-m", "tests.integration._otel_tasks", database],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=DEADLINE,
    )
    made = json.loads(produced.stdout)
    producer_spans = made["spans"]
    [request] = _by_name(producer_spans, "POST /signup")
    enqueues = _by_name(producer_spans, "enqueue default")
    [batch] = _by_name(producer_spans, "enqueue_many default")
    assert [s["parent"] for s in [*enqueues, batch]] == [request["span_id"]] * 3
    assert {s["kind"] for s in [*enqueues, batch]} == {"PRODUCER"}
    single = next(s for s in enqueues if s["attributes"]["jobq.task"] == "greet")
    failing = next(s for s in enqueues if s["attributes"]["jobq.task"] == "explode")
    assert single["attributes"] == {
        "messaging.system": "jobq",
        "messaging.operation.type": "send",
        "messaging.operation.name": "enqueue",
        "messaging.destination.name": "default",
        "messaging.message.id": str(made["single"]),
        "jobq.task": "greet",
    }
    assert batch["attributes"]["messaging.batch.message_count"] == 2
    assert "messaging.message.id" not in batch["attributes"]

    spans_file = tmp_path / "worker-spans.json"
    worker = [sys.executable, "-m", "jobq.cli", "worker", "--db", database]
    worker += ["--import", "tests.integration._otel_tasks", "--concurrency", "2"]
    environment = {**os.environ, "OTEL_TEST_SPANS_FILE": str(spans_file)}
    ids = [made["single"], made["failing"], *made["batch"]]
    queue = DurableQueue(database)
    log = tmp_path / "worker.log"
    try:
        with started_process(worker, log=log, env=environment) as child:

            def finished() -> bool:
                assert child.poll() is None, log.read_text()
                statuses = {queue.get(i).status for i in ids}
                return statuses <= {JobStatus.COMPLETED, JobStatus.FAILED}

            wait_for(finished, "the worker ran every job", DEADLINE, interval=0.02)
            child.send_signal(signal.SIGTERM)
            assert child.wait(DEADLINE) == 0, log.read_text()
    finally:
        queue.close()
    consumer_spans = json.loads(spans_file.read_text(encoding="utf-8"))

    [run] = _runs_of(consumer_spans, made["single"])
    assert run["name"] == "run default"
    assert run["links"] == [_link_to(single)]
    assert run["trace_id"] != request["trace_id"]  # linked, not stretched into the request
    assert run["attributes"] == {
        "messaging.system": "jobq",
        "messaging.operation.type": "process",
        "messaging.operation.name": "run",
        "messaging.destination.name": "default",
        "messaging.message.id": str(made["single"]),
        "jobq.task": "greet",
        "jobq.attempt": 1,
        "jobq.max_attempts": 3,
    }
    assert (run["status"], run["events"]) == ("UNSET", [])

    attempts = _runs_of(consumer_spans, made["failing"])
    assert [s["attributes"]["jobq.attempt"] for s in attempts] == [1, 2]  # the retry: a span
    for attempt in attempts:
        assert attempt["links"] == [_link_to(failing)]
        assert attempt["status"] == "ERROR"
        assert attempt["attributes"]["error.type"] == "ValueError"
        [event] = attempt["events"]
        assert event["name"] == "exception"
        assert event["attributes"]["exception.type"] == "ValueError"
        assert event["attributes"]["exception.message"] == "no luck"
        assert "in explode" in event["attributes"]["exception.stacktrace"]

    for job_id in made["batch"]:
        [run] = _runs_of(consumer_spans, job_id)
        assert run["links"] == [_link_to(batch)]
