"""OpenTelemetry spans for enqueueing and running jobs (the ``otel`` extra).

Call :func:`instrument` once per process, in the web app and in the worker,
after setting up the OpenTelemetry SDK (as for any OpenTelemetry instrumentor)::

    import jobq.tracing
    jobq.tracing.instrument()

Then, following the OpenTelemetry messaging semantic conventions:

- each ``enqueue`` is a ``PRODUCER`` span named ``enqueue <queue>``
  (``messaging.operation.type`` ``send``), and each ``enqueue_many`` one such
  span for the batch, named ``enqueue_many <queue>``, with
  ``messaging.batch.message_count``;
- the context of that span is stored in each job's payload (``"trace"``, in the
  W3C ``traceparent``/``tracestate`` form of the global propagator), so any
  process can pick it up;
- each attempt to run a job is a ``CONSUMER`` span named ``run <queue>``
  (``messaging.operation.type`` ``process``) that links to the enqueueing span,
  and is its child too with ``instrument(parent="producer")``; a failed attempt
  has status ERROR, ``error.type`` and the exception as an event; each retry is
  a span of its own with its ``jobq.attempt``.

Importing this module imports ``opentelemetry``; the rest of jobq never does.

Rule: imports opentelemetry, basic values and :mod:`jobq.tracing_hooks`;
nothing in jobq imports it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from . import tracing_hooks
from .errors import Retry
from .job import Job
from .storage.base import NewJob

__all__ = ["instrument", "is_instrumented", "uninstrument", "with_trace_context"]

SCHEMA_URL = "https://opentelemetry.io/schemas/1.39.0"
"""The semantic conventions version whose attribute names the spans use."""

SYSTEM = "jobq"
"""The value of ``messaging.system`` on every span."""

TRACE_KEY = "trace"
"""The payload key holding the enqueueing span's context."""

_ARGS_PREFIX = '{"args":'  # how every payload a task encodes starts
_quote: Callable[[str], str] = json.encoder.encode_basestring
_KEY = f'"{TRACE_KEY}":'


class OpenTelemetryTracer:
    """The :class:`jobq.tracing_hooks.JobTracer` that :func:`instrument` installs."""

    def __init__(self, tracer: trace.Tracer, *, parent: Literal["none", "producer"]) -> None:
        self._tracer = tracer
        self._run_as_child = parent == "producer"

    def enqueue(self, job: NewJob, store: Callable[[NewJob], Job]) -> Job:
        attributes = _attributes("send", "enqueue", job.queue, job.name)
        with self._tracer.start_as_current_span(
            f"enqueue {job.queue}", kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            stored = store(job._replace(payload=with_trace_context(job.payload)))
            if span.is_recording():
                span.set_attribute("messaging.message.id", str(stored.id))
            return stored

    def enqueue_many(
        self, template: NewJob, payloads: list[str], store: Callable[[list[str]], list[int]]
    ) -> list[int]:
        # One "send" span for the batch, its context in every job: the conventions
        # allow it when there are no per-message "create" spans, and a batch of
        # 10,000 jobs then costs one span, not 10,001.
        attributes = _attributes("send", "enqueue_many", template.queue, template.name)
        attributes["messaging.batch.message_count"] = len(payloads)
        with self._tracer.start_as_current_span(
            f"enqueue_many {template.queue}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            carrier = _current_carrier()
            suffix = _suffix(carrier)
            return store([_add_trace(p, carrier, suffix) for p in payloads])

    def run(self, job: Job, payload: Mapping[str, Any], call: Callable[[], Any]) -> Any:
        stored = payload.get(TRACE_KEY)
        producer = propagate.extract(stored) if isinstance(stored, dict) else None
        linked = None if producer is None else trace.get_current_span(producer).get_span_context()
        links = [Link(linked)] if linked is not None and linked.is_valid else None
        parent = producer if self._run_as_child and links else None
        attributes = _attributes("process", "run", job.queue, job.name)
        attributes["messaging.message.id"] = str(job.id)
        attributes["jobq.attempt"] = job.attempts
        attributes["jobq.max_attempts"] = job.max_attempts
        with self._tracer.start_as_current_span(
            f"run {job.queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return call()
            except Retry as exc:  # the task asked to run later: not an error
                span.add_event("jobq.retry", {"jobq.delay": exc.delay or 0.0})
                raise
            except BaseException as exc:  # the worker records any of them as a failure
                kind = type(exc)
                span.set_attribute("error.type", _qualified_name(kind))
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{kind.__name__}: {exc}"))
                raise


def with_trace_context(payload: str, carrier: Mapping[str, str] | None = None) -> str:
    """``payload`` (a job's JSON arguments) with ``carrier`` (default: the current
    span's context) under ``"trace"``. A payload that already holds a context
    keeps it, and one that is not a JSON object is returned as it is."""
    return _add_trace(payload, carrier if carrier is not None else _current_carrier())


def _add_trace(payload: str, carrier: Mapping[str, str], suffix: str = "") -> str:
    if not carrier:
        return payload
    # As tasks encode it, and with no "trace" anywhere (a kwarg may be named so).
    if payload.startswith(_ARGS_PREFIX) and payload.endswith("}") and _KEY not in payload:
        return payload[:-1] + (suffix or _suffix(carrier))
    try:
        decoded = json.loads(payload)
    except ValueError:
        return payload
    if not isinstance(decoded, dict) or TRACE_KEY in decoded:
        return payload
    decoded[TRACE_KEY] = dict(carrier)
    return _compact(decoded)


def _suffix(carrier: Mapping[str, str]) -> str:
    try:  # a propagator writes text: quoted by the C encoder, without json.dumps' setup
        items = ",".join(f"{_quote(key)}:{_quote(value)}" for key, value in carrier.items())
    except TypeError:
        return f",{_KEY}{_compact(carrier)}}}"
    return f",{_KEY}{{{items}}}}}"


def instrument(
    *,
    tracer_provider: trace.TracerProvider | None = None,
    parent: Literal["none", "producer"] = "none",
) -> None:
    """Trace every enqueue and every run in this process, from now on.

    :param tracer_provider: where spans go; default: OpenTelemetry's global
        provider (``trace.set_tracer_provider``).
    :param parent: ``"none"`` (default): a run's span starts a trace of its own
        (or joins the one current in its thread) and links to the span that
        enqueued the job, as the messaging conventions advise, so a job that
        waits an hour does not stretch the request's trace; ``"producer"``: it
        is also the enqueueing span's child, so one trace shows both.

    Calling it again replaces the previous settings. Raises ValueError for an
    unknown ``parent``.
    """
    if parent not in ("none", "producer"):
        raise ValueError(f"parent must be 'none' or 'producer', got {parent!r}")
    tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider, schema_url=SCHEMA_URL)
    tracing_hooks.active = OpenTelemetryTracer(tracer, parent=parent)


def uninstrument() -> None:
    """Stop tracing enqueues and runs in this process (jobs keep the context they hold)."""
    tracing_hooks.active = None


def is_instrumented() -> bool:
    """True while :func:`instrument` is in effect."""
    return tracing_hooks.active is not None


def _attributes(operation: str, name: str, queue: str, task: str) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": name,
        "messaging.destination.name": queue,
        "jobq.task": task,
    }


def _current_carrier() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _qualified_name(kind: type) -> str:
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"
