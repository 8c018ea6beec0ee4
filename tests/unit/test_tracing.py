"""jobq.tracing in one process, with the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind

import jobq
import jobq.tracing
from jobq import DurableQueue, JobStatus, PayloadError
from jobq.tracing import with_trace_context
from tests.helpers import ROOT, wait_for

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    jobq.tracing.instrument(tracer_provider=provider)
    yield exporter
    jobq.tracing.uninstrument()


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[DurableQueue]:
    queue = DurableQueue(tmp_path / "jobs.db")

    @queue.task("add")
    def add(a: int, b: int = 0) -> int:
        return a + b

    @queue.task("later")
    def later() -> None:
        raise jobq.Retry(delay=60)

    yield queue
    queue.close()


def spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def ids(context: SpanContext | None) -> tuple[int, int]:
    assert context is not None
    return context.trace_id, context.span_id


def test_the_payload_keeps_the_arguments_and_gains_the_context_under_trace() -> None:
    carrier = {"traceparent": TRACEPARENT}
    for payload in ['{"args":[1],"kwargs":{}}', '{"args":[],"kwargs":{"trace":"mine"}}']:
        for given in (carrier, {**carrier, "tracestate": 'odd="\\é'}):
            traced = json.loads(with_trace_context(payload, given))
            assert traced == {**json.loads(payload), "trace": given}
    assert with_trace_context("{}", carrier) == f'{{"trace":{{"traceparent":"{TRACEPARENT}"}}}}'
    own = '{"args":[],"kwargs":{},"trace":{"traceparent":"00-1-2-01"}}'
    assert with_trace_context(" " + own, carrier) == " " + own  # a context given is kept
    assert with_trace_context("[1]", carrier) == "[1]"
    assert with_trace_context("not json", carrier) == "not json"
    assert with_trace_context('{"args":[1],"kwargs":{}}', {}) == '{"args":[1],"kwargs":{}}'


def test_a_run_links_to_its_enqueue_and_is_its_child_only_when_asked(
    exporter: InMemorySpanExporter, queue: DurableQueue
) -> None:
    for parent in ("none", "producer"):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        jobq.tracing.instrument(tracer_provider=provider, parent=parent)  # type: ignore[arg-type]
        exporter.clear()
        job = queue.enqueue("add", 2, b=3)
        with provider.get_tracer("test").start_as_current_span("elsewhere"):
            queue.run_until_empty()  # ambient span: a "none" run joins it
        [enqueue], [run], [ambient] = (
            spans(exporter, n) for n in ("enqueue default", "run default", "elsewhere")
        )
        assert queue.get(job.id).decoded_result() == 5
        assert (enqueue.kind, run.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
        assert [ids(link.context) for link in run.links] == [ids(enqueue.context)]
        assert run.parent is not None
        expected = enqueue.context if parent == "producer" else ambient.context
        assert ids(run.parent) == ids(expected)


def test_a_failed_attempt_is_an_error_and_a_retry_request_is_not(
    exporter: InMemorySpanExporter, queue: DurableQueue
) -> None:
    @queue.task("fragile", max_attempts=1)
    def fragile() -> None:
        raise KeyError("gone")

    failed, snoozed = queue.enqueue("fragile"), queue.enqueue("later")
    queue.run_until_empty()
    assert queue.get(failed.id).status is JobStatus.FAILED
    runs = {span.attributes["jobq.task"]: span for span in spans(exporter, "run default")}  # type: ignore[index]
    assert runs["fragile"].status.is_ok is False
    assert runs["fragile"].status.description == "KeyError: 'gone'"
    assert runs["fragile"].attributes["error.type"] == "KeyError"  # type: ignore[index]
    assert [e.name for e in runs["fragile"].events] == ["exception"]
    assert queue.get(snoozed.id).status is JobStatus.PENDING
    assert runs["later"].status.is_unset
    assert [(e.name, e.attributes) for e in runs["later"].events] == [
        ("jobq.retry", {"jobq.delay": 60.0})
    ]


def test_a_batch_is_one_span_whose_context_every_job_carries(
    exporter: InMemorySpanExporter, queue: DurableQueue
) -> None:
    job_ids = queue.enqueue_many("add", [[1], [2], [3]])
    [batch] = spans(exporter, "enqueue_many default")
    assert batch.attributes["messaging.batch.message_count"] == 3  # type: ignore[index]
    traceparents = {json.loads(queue.get(i).payload)["trace"]["traceparent"] for i in job_ids}
    trace_id, span_id = ids(batch.context)
    assert {t[:-3] for t in traceparents} == {f"00-{trace_id:032x}-{span_id:016x}"}
    queue.run_until_empty()
    runs = spans(exporter, "run default")
    assert [r.attributes["messaging.message.id"] for r in runs] == [str(i) for i in job_ids]  # type: ignore[index]
    assert all([ids(link.context) for link in r.links] == [ids(batch.context)] for r in runs)


def test_jobs_added_to_a_batch_carry_the_enqueue_span(
    exporter: InMemorySpanExporter, queue: DurableQueue
) -> None:
    with queue.batch() as batch:
        job = batch.enqueue("add", 1, 2)
        job_ids = batch.enqueue_many("add", [[3], [4]])
    [one] = spans(exporter, "enqueue default")
    [many] = spans(exporter, "enqueue_many default")
    assert json.loads(queue.get(job.id).payload)["trace"]["traceparent"].startswith(
        f"00-{ids(one.context)[0]:032x}"
    )
    for job_id in job_ids:
        assert json.loads(queue.get(job_id).payload)["trace"]["traceparent"].startswith(
            f"00-{ids(many.context)[0]:032x}"
        )
    queue.run_until_empty()
    assert batch.status().completed == 3


def test_unique_keys_and_the_size_limit_see_the_arguments_only(
    exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    payload_of_one_char = len('{"args":["x"],"kwargs":{}}')
    queue = DurableQueue(tmp_path / "small.db", max_payload_bytes=payload_of_one_char)
    echo = queue.task("echo")(lambda text: text)
    echo.enqueue("x")  # exactly at the limit: the context stored with it does not count
    with pytest.raises(PayloadError):
        echo.enqueue("xy")
    first = echo.options(unique_key="k").enqueue("x")
    again = echo.options(unique_key="k").enqueue("x")
    assert (again.id, again.payload) == (first.id, first.payload)
    queue.close()


def test_jobs_enqueued_with_tracing_run_the_same_in_a_worker_without_it(
    exporter: InMemorySpanExporter, queue: DurableQueue
) -> None:
    job = queue.enqueue("add", 4, b=5)
    assert "trace" in json.loads(queue.get(job.id).payload)
    jobq.tracing.uninstrument()
    assert not jobq.tracing.is_instrumented()
    queue.run_until_empty()
    assert queue.get(job.id).decoded_result() == 9
    assert spans(exporter, "run default") == []


def test_worker_threads_start_each_run_without_another_jobs_span(
    exporter: InMemorySpanExporter, queue: DurableQueue
) -> None:
    job_ids = [queue.enqueue("add", n).id for n in range(6)]
    pool = queue.start_workers(concurrency=3)
    try:
        wait_for(lambda: len(spans(exporter, "run default")) == 6, "six runs traced")
    finally:
        pool.stop()
    runs = spans(exporter, "run default")
    assert sorted(int(r.attributes["messaging.message.id"]) for r in runs) == job_ids  # type: ignore[arg-type, index]
    assert all(r.parent is None for r in runs)


def test_instrument_rejects_an_unknown_parent() -> None:
    with pytest.raises(ValueError, match="parent must be 'none' or 'producer', got 'child'"):
        jobq.tracing.instrument(parent="child")  # type: ignore[arg-type]


def test_jobq_never_imports_opentelemetry_while_tracing_is_off(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        import jobq
        queue = jobq.DurableQueue({str(tmp_path / "off.db")!r})
        queue.task("add")(lambda a, b: a + b)
        queue.enqueue("add", 1, 2)
        queue.enqueue_many("add", [[1, 2]])
        queue.run_until_empty()
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
