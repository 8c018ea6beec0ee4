"""The checks of transactional enqueue (:mod:`jobq.storage.external`), run once
above every backend: the jobs as for any enqueue, ``now`` a time; the connection
is the backend's to judge.

Apart from :mod:`jobq.storage.external` because the checks import the storage
contract, which imports that module. Rule: imports the checks and the contract's
pieces, never a backend.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from ..validate import check_time
from ._checks import check_new
from .external import ExternalStore
from .records import Enqueued, NewJob


def _check_no_dependencies(job: NewJob) -> None:
    # Dependencies are kept by the backend's own enqueue (jobq.storage.dependencies),
    # not by these inserts: a job written here would not wait.
    if job.depends_on:
        raise ValueError(
            f"a job with depends_on ({job.name}) cannot be enqueued in the app's "
            "transaction (in_transaction); enqueue it after the app has committed"
        )


class CheckedExternal:
    """The transactional enqueue methods of
    :class:`~jobq.storage.checked.CheckedStorage`: arguments checked here, SQL run
    by the backend's :attr:`_external` part."""

    _external: ExternalStore

    def enqueue_on(self, connection: Any, job: NewJob, *, now: float) -> Enqueued:
        check_new(job, None)
        _check_no_dependencies(job)
        check_time("now", now)
        return self._external.enqueue(connection, job, now)

    def enqueue_many_on(self, connection: Any, jobs: Sequence[NewJob], *, now: float) -> list[int]:
        check_time("now", now)
        jobs = list(jobs)
        for index, job in enumerate(jobs):
            check_new(job, index)
            _check_no_dependencies(job)
        if not jobs:
            return []
        return self._external.enqueue_many(connection, jobs, now)

    def enqueue_payloads_on(
        self, connection: Any, template: NewJob, payloads: Sequence[str], *, now: float
    ) -> list[int]:
        check_time("now", now)
        check_new(template._replace(payload=""), None)
        _check_no_dependencies(template)
        if template.unique_key is not None or template.limit_key is not None or not payloads:
            jobs = [template._replace(payload=p) for p in payloads]
            return self.enqueue_many_on(connection, jobs, now=now)
        for index, payload in enumerate(payloads):
            if type(payload) is not str:
                check_new(template._replace(payload=payload), index)  # raises TypeError
        return self._external.enqueue_payloads(connection, template, payloads, now)

    def notify_committed(self, queues: Collection[str]) -> None:
        names = sorted({queue for queue in queues if isinstance(queue, str) and queue})
        if names:
            self._external.committed(names)
