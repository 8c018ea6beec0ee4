"""Blinker signals of the Flask extension: the core's job events, sent with the app.

Each :class:`~flask_jobq.JobQ`-initialised app re-sends the core signals of
its own :class:`jobq.DurableQueue` (:mod:`jobq.signals`) here, with the Flask
app as sender, so a receiver can tell apps apart and fires once per event::

    from flask_jobq import signals

    @signals.job_failed.connect_via(app)
    def report(app, *, job, error, **_):
        app.logger.error("job %d (%s) failed: %s", job.id, job.name, error.message)

Receivers get keyword arguments only: ``job`` (a :class:`jobq.Job`, as claimed
for the attempt) and, where the core gives them, ``error`` (a
:class:`jobq.JobError`), ``exception`` (the exception object that ended the
attempt, with its traceback: see :mod:`jobq.signals`), ``duration`` (seconds),
``result`` and ``run_at``. Accept ``**kwargs`` too: later versions may add
keywords. A receiver that raises is logged on the ``jobq.signals`` logger and
never breaks a worker, the other receivers or the request that enqueued the job.

Signals are sent from the thread where the event happens: ``job_enqueued`` in
the enqueueing thread, the others in worker threads, without an application
context (use the ``app`` sender: ``with app.app_context(): ...``).
"""

from __future__ import annotations

from blinker import Namespace

namespace = Namespace()
"""Every flask_jobq signal lives in this namespace (distinct from :mod:`jobq.signals`)."""

job_enqueued = namespace.signal(
    "job-enqueued",
    doc="A new job was stored (not sent when an enqueue returned or replaced the live "
    "job holding its unique key). Keywords: ``job``.",
)
job_started = namespace.signal(
    "job-started",
    doc="A worker began an attempt. Keywords: ``job`` (``attempts`` counts this one).",
)
job_succeeded = namespace.signal(
    "job-succeeded",
    doc="A job completed. Keywords: ``job`` (as claimed), ``result`` (decoded JSON).",
)
job_failed = namespace.signal(
    "job-failed",
    doc="A job failed for good (no attempts left, or jobq.Fail raised). "
    "Keywords: ``job``, ``error``, ``exception``, ``duration`` (seconds the attempt ran).",
)
job_retrying = namespace.signal(
    "job-retrying",
    doc="An attempt failed and the job will run again. Keywords: ``job``, ``error``, "
    "``run_at`` (epoch seconds), ``exception``, ``duration`` (seconds the attempt ran).",
)
job_cancelled = namespace.signal(
    "job-cancelled", doc="A running job stopped after a cancel request. Keywords: ``job``."
)
job_lease_expired = namespace.signal(
    "job-lease-expired",
    doc="Jobs whose worker stopped renewing their lease were released by this app's "
    "workers. Keywords: ``requeued``, ``failed``, ``cancelled`` (tuples of job ids; "
    "there is no single ``job``).",
)
worker_started = namespace.signal(
    "worker-started", doc="The app's worker pool started in this process. Keywords: ``pool``."
)
worker_stopped = namespace.signal(
    "worker-stopped", doc="The app's worker pool stopped. Keywords: ``pool``."
)
