"""What a running task can know and say about its job: ``jobq.current_job()``.

The context is thread-local, so a task's own signature never has to make
room for it::

    @queue.task()
    def export(report_id: int) -> None:
        job = jobq.current_job()
        for done, chunk in enumerate(chunks(report_id)):
            if job.cancel_requested:
                return                       # the job ends cancelled
            write(chunk)
            job.set_progress(done / total)
        job.log(f"wrote {total} chunks")    # kept with the job, see job_logs()

Rule: the worker makes contexts; this module never imports the worker or
:mod:`jobq.queue`, and sees the queue through the :class:`TaskQueue` protocol.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from . import codec
from .clock import Clock
from .job import Job
from .storage.base import Storage
from .storage.job_logs import NewLogLine, clip

_local = threading.local()
_event_lock = threading.Lock()


class TaskQueue(Protocol):
    """The queue running a job, as a task sees it through :attr:`JobContext.queue`
    (a :class:`~jobq.DurableQueue` at run time)."""

    @property
    def storage(self) -> Storage:
        """Where the jobs live."""
        ...

    @property
    def clock(self) -> Clock:
        """Wall clock of stored times."""
        ...

    @property
    def extensions(self) -> dict[str, Any]:
        """Objects that add-ons keep per queue, by key."""
        ...


class JobContext:
    """The job a task is running for. Made by the worker, one per attempt."""

    def __init__(self, job: Job, report_progress: Callable[[str], bool], queue: TaskQueue) -> None:
        self._job = job
        self._queue = queue
        self._report_progress = report_progress
        self._cancelled = False
        self._cancel: threading.Event | None = None  # made when a task waits on it

    @property
    def job(self) -> Job:
        """The job as it was claimed for this attempt."""
        return self._job

    @property
    def queue(self) -> TaskQueue:
        """The :class:`~jobq.DurableQueue` that stored the job and runs it (typed as
        the :class:`TaskQueue` protocol, as this module sits below the queue)."""
        return self._queue

    @property
    def id(self) -> int:
        return self._job.id

    @property
    def attempt(self) -> int:
        """This attempt's number, 1 for the first."""
        return self._job.attempts

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked to cancel this job; stop soon and return."""
        return self._cancelled

    def wait_for_cancel(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking early if a cancel is requested.
        Returns :attr:`cancel_requested`."""
        with _event_lock:
            if self._cancel is None:
                self._cancel = threading.Event()
                if self._cancelled:
                    self._cancel.set()
        return self._cancel.wait(timeout)

    def set_progress(self, progress: Any) -> None:
        """Record progress (any JSON value, e.g. ``0.4`` or ``{"done": 40}``), visible
        through ``queue.get()`` and ``queue.list()``. Raises TypeError for non-JSON."""
        self._report_progress(codec.encode(progress, name="progress"))

    def log(self, message: str) -> None:
        """Keep ``message`` with the job as one line, stamped with this attempt's
        number and the queue's clock; read back by ``queue.job_logs(id)``, the
        monitor's ``GET /jobq/jobs/<id>/logs`` and ``jobq logs ID``.

        Each call writes the line at once in one short transaction (about as
        costly as :meth:`set_progress`), so the lines written before a crash are
        kept. A job keeps its newest 100 lines (:data:`jobq.defaults.JOB_LOG_LINES`):
        older ones are dropped, the last attempt's last lines being the ones that
        explain a failure. A line longer than 1000 characters
        (:data:`jobq.defaults.JOB_LOG_LINE_CHARS`) is cut, ending in
        ``...[N more characters]``. Meant for milestones ("sent to smtp.example.com"),
        not for a line per item of a long loop: use :meth:`set_progress` for that.

        Raises TypeError if ``message`` is not a str, and
        :class:`~jobq.storage.base.StorageError` if the database cannot be written.
        """
        if not isinstance(message, str):
            raise TypeError(
                f"a job log line must be a str, got {type(message).__name__}; "
                "format it first, e.g. job.log(f'{value!r}')"
            )
        line = NewLogLine(self.attempt, self._queue.clock.now(), clip(message))
        self._queue.storage.append_job_log(self._job.id, [line])

    def request_cancel(self) -> None:
        # Called by the worker when the database says a cancel was requested.
        with _event_lock:
            self._cancelled = True
            if self._cancel is not None:
                self._cancel.set()


def current_job() -> JobContext:
    """The context of the job running in this thread.

    Raises RuntimeError outside a task run by a jobq worker.
    """
    context: JobContext | None = getattr(_local, "context", None)
    if context is None:
        raise RuntimeError(
            "jobq.current_job() was called outside a job; it only works inside a task "
            "run by a jobq worker (or by queue.run_until_empty())"
        )
    return context


def _set_current(context: JobContext | None) -> None:
    _local.context = context
