"""Sentry for jobq's workers: one event per job that failed for good, tagged with the job.

Needs the ``sentry`` extra (``pip install 'jobq[sentry]'``, which installs
``sentry-sdk``)::

    import sentry_sdk
    from jobq.sentry import JobqIntegration

    sentry_sdk.init(dsn="https://...", integrations=[JobqIntegration()])

How it works: a worker logs a job's final failure at ERROR on the ``jobq.jobs``
logger with the task's exception as ``exc_info`` (see :mod:`jobq.worker.logs`);
Sentry's logging integration (on by default, ``event_level`` ERROR) makes an
event of it with the task's real traceback. This integration adds the job's
tags to that event: ``jobq.task``, ``jobq.job_id``, ``jobq.attempt``,
``jobq.queue``. A failed attempt that will be retried is logged at WARNING: a
breadcrumb, not an event, unless ``capture_retries=True``.

Rule: imports :mod:`jobq.signals`, the worker's logger name and ``sentry_sdk``;
:mod:`jobq` never imports this module.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import sentry_sdk
from sentry_sdk.integrations import Integration
from sentry_sdk.scope import add_global_event_processor

from . import signals
from .errors import Retry
from .job import Job
from .worker.logs import JOBS_LOGGER

if TYPE_CHECKING:
    from sentry_sdk._types import Event

__all__ = ["JobqIntegration"]

TAGS = {
    "jobq.task": "task",
    "jobq.job_id": "job_id",
    "jobq.attempt": "attempt",
    "jobq.queue": "queue",
}
"""Each tag an event about a job gets, and the log record's field it comes from."""


class JobqIntegration(Integration):
    """Tags the events of jobs that failed for good (see the module's description).

    :param capture_retries: also send an event for each failed attempt that will
        be retried (default False: those are breadcrumbs only). Its level is
        ``warning``, its tags those of a final failure.
    """

    identifier = "jobq"

    def __init__(self, *, capture_retries: bool = False) -> None:
        self.capture_retries = capture_retries

    @staticmethod
    def setup_once() -> None:
        """Called by ``sentry_sdk.init`` once per process."""
        add_global_event_processor(_tag_job_event)
        signals.job_retrying.connect(_capture_retry, weak=False)


def _tag_job_event(event: Event, hint: dict[str, Any]) -> Event:
    record = hint.get("log_record") if hint else None
    if (
        isinstance(record, logging.LogRecord)
        and record.name == JOBS_LOGGER
        and sentry_sdk.get_client().get_integration(JobqIntegration) is not None
        and hasattr(record, "job_id")
    ):
        tags = event.setdefault("tags", {})
        for tag, field in TAGS.items():
            tags[tag] = str(getattr(record, field, ""))
    return event


def _capture_retry(
    sender: object, *, job: Job, exception: BaseException | None = None, **_: Any
) -> None:
    integration = sentry_sdk.get_client().get_integration(JobqIntegration)
    if integration is None or not integration.capture_retries:
        return
    if exception is None or isinstance(exception, Retry):  # asked for, not a failure
        return
    with sentry_sdk.new_scope() as scope:
        scope.set_level("warning")
        scope.set_tag("jobq.task", job.name)
        scope.set_tag("jobq.job_id", str(job.id))
        scope.set_tag("jobq.attempt", str(job.attempts))
        scope.set_tag("jobq.queue", job.queue)
        scope.set_tag("jobq.retry", "true")
        sentry_sdk.capture_exception(exception)
