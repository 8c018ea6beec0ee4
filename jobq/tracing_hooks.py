"""The switch enqueueing and running look at before tracing: :data:`active`.

It is None until :func:`jobq.tracing.instrument` sets it, and then the one
thing the hot paths pay while tracing is off is reading it. The tracer behind
it keeps the trace context of the enqueueing span in the job's payload, next to
``args`` and ``kwargs``, as ``"trace": {"traceparent": ..., "tracestate": ...}``
(a worker that predates tracing reads ``args`` and ``kwargs`` only).

Rule: imports basic values only; never opentelemetry (:mod:`jobq.tracing` does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .job import Job


class JobTracer(Protocol):
    """What the queue and the worker ask of the tracing that is on."""

    def enqueue(self, queue: str, task: str, payload: str, store: Callable[[str], Job]) -> Job:
        """Store one job (``store`` takes the payload to store, with the trace
        context added) inside a producer span; return what ``store`` returned."""
        ...

    def enqueue_many(
        self, queue: str, task: str, payloads: list[str], store: Callable[[list[str]], list[int]]
    ) -> list[int]:
        """Store a batch of jobs inside one producer span; return their ids."""
        ...

    def run(self, job: Job, payload: Mapping[str, Any], call: Callable[[], Any]) -> Any:
        """Call ``call`` (the task) inside a consumer span linked to the context
        stored in ``payload``; return its result or raise what it raised."""
        ...


active: JobTracer | None = None
"""The tracing that is on, or None (the default): set by :func:`jobq.tracing.instrument`."""
