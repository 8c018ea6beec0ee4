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
from typing import TYPE_CHECKING, Any, Protocol

from .job import Job

if TYPE_CHECKING:
    from .storage.base import NewJob


class JobTracer(Protocol):
    """What the queue and the worker ask of the tracing that is on."""

    def enqueue(self, job: NewJob, store: Callable[[NewJob], Job]) -> Job:
        """Store ``job`` with ``store`` (given the job with the trace context added
        to its payload) inside a producer span; return what ``store`` returned."""
        ...

    def enqueue_many(
        self, template: NewJob, payloads: list[str], store: Callable[[list[str]], list[int]]
    ) -> list[int]:
        """Store a batch of jobs like ``template`` (``store`` takes their payloads,
        the trace context added) inside one producer span; return their ids."""
        ...

    def run(self, job: Job, payload: Mapping[str, Any], call: Callable[[], Any]) -> Any:
        """Call ``call`` (the task) inside a consumer span linked to the context
        stored in ``payload``; return its result or raise what it raised."""
        ...


active: JobTracer | None = None
"""The tracing that is on, or None (the default): set by :func:`jobq.tracing.instrument`."""
