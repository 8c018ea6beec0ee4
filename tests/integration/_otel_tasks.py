"""Two processes traced with OpenTelemetry's SDK, for tests/integration/test_tracing_processes.py.

The worker: ``jobq worker --db DB --import tests.integration._otel_tasks`` with
``$OTEL_TEST_SPANS_FILE`` set: importing this module sets up the SDK with an in-memory
exporter, turns tracing on, registers the tasks, and writes the finished spans
to that file as JSON when the process exits.

The producer: ``python -m tests.integration._otel_tasks DB`` opens a span like a
web request's, enqueues jobs inside it, and prints its spans and the job ids as JSON.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import jobq
import jobq.tracing


def greet(name: str) -> str:
    return f"hello {name}"


def explode(reason: str) -> None:
    raise ValueError(reason)


def register(queue: jobq.DurableQueue) -> None:
    """Register ``greet`` and ``explode`` (two attempts, no wait between them)."""
    queue.task("greet")(greet)
    queue.task("explode", max_attempts=2, backoff=0.0)(explode)


def traced() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A tracer provider exporting to memory, and jobq tracing on with it."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    jobq.tracing.instrument(tracer_provider=provider)
    return provider, exporter


def as_json(span: ReadableSpan) -> dict[str, Any]:
    """What a test checks of a span, in JSON: ids in hex, as traceparent writes them."""
    context = span.context
    assert context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent": None if span.parent is None else f"{span.parent.span_id:016x}",
        "links": [
            {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
    }


def produce(database: str) -> dict[str, Any]:
    """Enqueue one ``greet``, one ``explode`` and a batch of two ``greet`` inside a
    request-like span; return the spans and the job ids."""
    provider, exporter = traced()
    queue = jobq.DurableQueue(database)
    register(queue)
    with provider.get_tracer("app").start_as_current_span("POST /signup"):
        single = queue.enqueue("greet", "ada").id
        failing = queue.enqueue("explode", "no luck").id
        batch = queue.enqueue_many("greet", [["bob"], ["cy"]])
    queue.close()
    spans = [as_json(span) for span in exporter.get_finished_spans()]
    return {"spans": spans, "single": single, "failing": failing, "batch": batch}


def _export_at_exit(path: Path, exporter: InMemorySpanExporter) -> None:
    spans = [as_json(span) for span in exporter.get_finished_spans()]
    path.write_text(json.dumps(spans), encoding="utf-8")


if __name__ == "__main__":
    print(json.dumps(produce(sys.argv[1])))
elif "OTEL_TEST_SPANS_FILE" in os.environ:  # imported by the worker
    _, _exporter = traced()
    atexit.register(_export_at_exit, Path(os.environ["OTEL_TEST_SPANS_FILE"]), _exporter)
    register(jobq.default_queue())
