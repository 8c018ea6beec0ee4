"""Exceptions raised by jobq. Every one derives from :class:`JobqError`."""

from __future__ import annotations


class JobqError(Exception):
    """Base class of every exception jobq raises on purpose."""


class ConfigurationError(JobqError, ValueError):
    """Settings that contradict each other or an earlier configuration."""


class QueueFull(JobqError):
    """A bounded executor's waiting list is full and it was asked not to block.

    ``max_queued`` holds the bound that was reached.
    """

    def __init__(self, max_queued: int) -> None:
        super().__init__(
            f"the executor already holds {max_queued} waiting tasks (max_queued={max_queued}); "
            "wait with wait_size_less_than(), or use when_full='block'"
        )
        self.max_queued = max_queued


class TaskTimeout(JobqError, TimeoutError):
    """A task ran longer than its timeout; its future fails with this error.

    It is a :class:`TimeoutError`, so ``except TimeoutError`` catches it.
    ``timeout`` is the limit that was exceeded, in seconds.
    """

    def __init__(self, timeout: float, task: str, *, killed: bool = False) -> None:
        message = f"task {task} did not finish within its timeout of {timeout:g} s"
        if killed:
            message += f"; the child process running it was killed after {timeout:g} s"
        super().__init__(message)
        self.timeout = timeout


class ChildProcessDied(JobqError):
    """The child process running a process-isolated attempt (``isolation="process"``)
    died before it answered: a segfault, ``os._exit()``, the OOM killer. The attempt
    fails with this error (retried by the usual rules); the worker goes on with a
    new child. ``signal`` is the name of the signal that ended it (``"SIGSEGV"``),
    or None; ``exit_code`` its exit status when it exited, or None."""

    def __init__(self, signal: str | None, exit_code: int | None) -> None:
        if signal is not None:
            how = f"died with signal {signal}"
        elif exit_code is not None:
            how = f"exited with status {exit_code}"
        else:  # its fork server went first: the pool stopped
            how = "was lost"
        super().__init__(f"the process running the task {how} before it finished")
        self.signal = signal
        self.exit_code = exit_code


class ChildTaskError(JobqError):
    """An exception a task raised in its child process (``isolation="process"``), as
    it came back to the worker: only text crosses, never the exception object.
    ``type_name`` is the exception's qualified type name, ``message`` its text and
    ``traceback_text`` its formatted traceback (also stored on the job's error)."""

    def __init__(self, type_name: str, message: str, traceback_text: str | None) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text


class WorkerStopped(JobqError):
    """A worker pool stopped, and its grace period ran out, while a job ran: the
    attempt is recorded as failed with this error (run again if attempts remain).
    Sent as ``exception`` with ``job_retrying`` and ``job_failed``; never raised."""


class PayloadError(JobqError, TypeError):
    """A job's arguments or result cannot be stored as JSON.

    ``path`` says where the offending value sits (``"args[1]['when']"``).
    """

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class UnknownTask(JobqError, LookupError):
    """No task is registered under this name in this process."""

    def __init__(self, name: str, known: list[str]) -> None:
        listed = ", ".join(repr(n) for n in sorted(known)) or "none"
        super().__init__(
            f"no task named {name!r} is registered (registered: {listed}); "
            "import the module that defines it before starting workers"
        )
        self.name = name


class JobNotFound(JobqError, LookupError):
    """No job has this id (it never existed, or was purged). ``job_id`` is the id."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"no job with id {job_id}")
        self.job_id = job_id


class ScheduleNotFound(JobqError, KeyError):
    """No recurring schedule has this name in the database."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule named {name!r}")
        self.name = name

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class NotConfigured(JobqError, RuntimeError):
    """:func:`jobq.submit` was called before any default queue was configured."""


class Retry(JobqError):
    """Raise from a task to run it again later without counting a failure.

    ``delay`` is seconds from now (default: the task's backoff for this
    attempt). The attempt does not count against ``max_attempts``.
    """

    def __init__(self, delay: float | None = None, reason: str = "") -> None:
        super().__init__(reason or f"retry requested (delay={delay!r})")
        if delay is not None and not delay >= 0:
            raise ValueError(f"Retry delay must be at least 0 seconds, got {delay!r}")
        self.delay = delay


class TransientError(JobqError):
    """Raise from a task for a failure that another attempt may not meet (a refused
    connection, a busy server). It counts as an attempt like any exception; after
    ``max_attempts`` the job fails. ``retry_after`` (seconds, e.g. from an HTTP
    ``Retry-After`` header) replaces the task's backoff for this retry.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        if retry_after is not None and not retry_after >= 0:
            raise ValueError(f"retry_after must be at least 0 seconds, got {retry_after!r}")
        self.retry_after = retry_after


class Fail(JobqError):
    """Raise from a task to fail the job at once, with no further attempts."""


class Refused(JobqError):
    """A remote server refused a job's request for good: an SMTP 5xx reply, an HTTP
    ``404``. The email and webhook handlers raise it and name it in their task's
    ``discard_on``, so the job fails at once with the answer in its error; unlike
    :class:`Fail`, retry rules may decide otherwise (install the handler with
    ``retry_on={jobq.Refused: 3}, discard_on=()`` to try again anyway)."""


class StorageError(JobqError):
    """The database refused or failed an operation after bounded retries."""


class SchemaVersionError(StorageError):
    """The database was written by a newer jobq than this one.

    ``found`` and ``supported`` hold the two schema versions.
    """

    def __init__(self, found: int, supported: int) -> None:
        super().__init__(
            f"the database has schema version {found} but this jobq supports up to "
            f"{supported}; upgrade jobq (never downgrade it on an upgraded database)"
        )
        self.found = found
        self.supported = supported


class WrongProcessError(StorageError):
    """A database connection was used in a process other than the one that opened it.

    SQLite connections must not cross ``fork()``; doing so can corrupt the
    database. ``opened_in`` and ``used_in`` hold the two process ids.
    """

    def __init__(self, opened_in: int, used_in: int) -> None:
        super().__init__(
            f"a SQLite connection opened in process {opened_in} was used in process "
            f"{used_in}; go through the Storage object (it opens one per process) and "
            "do not keep connections or transactions across fork()"
        )
        self.opened_in = opened_in
        self.used_in = used_in


class UniqueKeyConflict(StorageError):
    """Retrying a job would give its ``unique_key`` to two live jobs of its task.

    ``unique_key`` is the key; ``existing_id`` the pending or processing job
    that holds it now.
    """

    def __init__(self, unique_key: str, existing_id: int) -> None:
        super().__init__(
            f"job {existing_id} already holds unique_key {unique_key!r} and is pending or "
            "processing; cancel or wait for it first"
        )
        self.unique_key = unique_key
        self.existing_id = existing_id


class TooManyPausedQueues(JobqError, ValueError):
    """Pausing one more queue would pass the limit on paused queue names.

    ``limit`` is that limit (:data:`jobq.storage.base.MAX_PAUSED_QUEUES`) and
    ``queue`` the name that was refused.
    """

    def __init__(self, queue: str, limit: int) -> None:
        shown = queue if len(queue) <= 80 else f"{queue[:80]}..."
        super().__init__(
            f"cannot pause queue {shown!r}: {limit:,} queues are paused already, the most "
            "allowed; resume queues that no longer need it first"
        )
        self.queue = queue
        self.limit = limit


class CommandError(JobqError):
    """Bad input to a ``jobq`` or ``flask jobq`` command (unknown id or status,
    malformed option, missing database): reported on one line, exit code 2."""


class AppImportError(CommandError):
    """A module given to ``jobq`` (``--app``, ``--import``) raised while it was
    imported. The command prints :attr:`details` (the module's own traceback,
    without jobq's frames), then this error on one line, and exits with code 2.

    :param details: the traceback text, ending with the module's exception.
    """

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details


class BatchNotFound(JobqError, LookupError):
    """No batch has this id. ``batch_id`` is the id."""

    def __init__(self, batch_id: int) -> None:
        super().__init__(f"no batch with id {batch_id}")
        self.batch_id = batch_id


class BatchSealed(JobqError):
    """Jobs were added to a batch that is sealed (its ``with`` block ended, or
    ``seal()`` or ``cancel()`` was called): its callback may have run already, so
    the jobs are refused and nothing is stored. Make a new batch for more jobs.
    ``batch_id`` is the batch's id."""

    def __init__(self, batch_id: int) -> None:
        super().__init__(
            f"batch {batch_id} is sealed: no jobs can be added to it; make a new batch"
        )
        self.batch_id = batch_id
