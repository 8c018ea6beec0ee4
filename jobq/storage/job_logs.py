"""Short lines a running task keeps with its job: the storage side of
``jobq.current_job().log("...")``.

A job holds at most ``keep`` lines (:data:`~jobq.defaults.JOB_LOG_LINES`, 100,
by default); appending beyond that drops the **oldest** lines, so the lines
nearest a failure, those of the last attempt, are the ones kept (BullMQ's
``keepLogs`` trims the same end). Every line gets the next number of its job,
1, 2, 3, ..., so a reader sees how many were dropped: the first line kept is
numbered one more than that. Each line says the attempt that wrote it and when
(epoch seconds, from the queue's clock at the call: the worker host's clock
even where PostgreSQL stamps the jobs with its own). Lines go with their job
when the job is deleted (purge, retention): the database does it (a trigger
on SQLite, a cascading foreign key on PostgreSQL).

:class:`JobLogStorage` is this piece of the storage contract;
:class:`CheckedJobLogs` checks its arguments once, above every backend, and
hands them to the backend's :class:`JobLogStore` part, which only runs SQL.

Rule: imports basic values only (``defaults``, ``validate``); the storage
contract (:mod:`jobq.storage.base`) imports this module, not the reverse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from ..defaults import JOB_LOG_LINE_CHARS, JOB_LOG_LINES
from ..validate import check_int_range, check_time, is_int

KEEP_RANGE = (1, 10_000)
"""Fewest and most lines a job may be asked to keep."""
ATTEMPT_RANGE = (1, 2**31 - 1)
"""Attempt numbers a line may carry: PostgreSQL's ``integer`` column."""


class NewLogLine(NamedTuple):
    """A line to append: the attempt that wrote it (1 for the first), when
    (epoch seconds) and the text (a str of at most
    :data:`~jobq.defaults.JOB_LOG_LINE_CHARS` characters, without NUL)."""

    attempt: int
    logged_at: float
    message: str


class JobLogLine(NamedTuple):
    """A line kept with a job, as :meth:`jobq.DurableQueue.job_logs` returns it.

    ``number`` counts the job's lines from 1, dropped ones included, so the first
    line kept having number 31 means 30 older lines were dropped. ``attempt`` is
    the attempt that wrote it (1 for the first); ``logged_at`` epoch seconds.
    """

    number: int
    attempt: int
    logged_at: float
    message: str


class JobLogStorage(Protocol):
    """The storage contract's piece for job log lines (part of
    :class:`~jobq.storage.base.Storage`)."""

    def append_job_log(
        self, job_id: int, lines: Sequence[NewLogLine], *, keep: int = JOB_LOG_LINES
    ) -> int:
        """Append ``lines``, in order, to the job's lines in one short transaction,
        then drop its oldest lines beyond the newest ``keep`` (1 to 10,000;
        default 100). Returns how many of ``lines`` were stored: 0 if the job does
        not exist (it may have been purged meanwhile), and at most ``keep``.

        Lines are not fenced by the lease: a worker whose lease was rescued still
        appends, and its lines say their attempt. Raises TypeError or ValueError
        for a bad line (naming it) before anything is written.
        """
        ...

    def job_logs(self, job_id: int) -> list[JobLogLine]:
        """The job's kept lines, oldest first; empty for an unknown job."""
        ...


class JobLogStore(Protocol):
    """What a backend provides for job logs: SQL only, on checked values."""

    def append(self, job_id: int, lines: Sequence[NewLogLine], skipped: int, keep: int) -> int:
        """Store ``lines`` (at least one, at most ``keep``) after the job's last
        line plus ``skipped`` numbers (lines of this call left out, being already
        beyond ``keep``, so the numbers still count every line), and drop the lines
        older than the newest ``keep``. Returns len(lines), or 0 for an unknown job."""
        ...

    def lines(self, job_id: int) -> list[JobLogLine]:
        """The job's lines by number."""
        ...


def check_line(line: NewLogLine, index: int) -> None:
    """Reject a bad line, naming it as ``lines[index]``."""
    where = f" (lines[{index}])"
    if not isinstance(line, tuple) or len(line) != 3:
        raise TypeError(f"each line must be a NewLogLine, got {line!r}{where}")
    attempt, logged_at, message = line
    if not is_int(attempt):
        raise TypeError(f"attempt must be an integer, got {attempt!r}{where}")
    check_int_range("attempt", attempt, ATTEMPT_RANGE, where)
    check_time(f"logged_at{where}", logged_at)
    if not isinstance(message, str):
        raise TypeError(f"message must be a str, got {type(message).__name__}{where}")
    if len(message) > JOB_LOG_LINE_CHARS:
        raise ValueError(
            f"message must be at most {JOB_LOG_LINE_CHARS} characters, got "
            f"{len(message)}{where}; cut it first (jobq.storage.job_logs.clip)"
        )
    if "\x00" in message:  # PostgreSQL text cannot hold it
        raise ValueError(f"message must not contain a NUL character{where}")


def clip(message: str, limit: int = JOB_LOG_LINE_CHARS) -> str:
    """``message`` as a line may hold it: NUL characters shown as ``\\0``, and if
    longer than ``limit`` characters (at least 40), cut to exactly ``limit`` ending in a marker
    that says how many characters were cut: ``"...[1234 more characters]"``."""
    if "\x00" in message:
        message = message.replace("\x00", "\\0")
    if len(message) <= limit:
        return message
    # The marker's length depends on the count it shows, which depends on the
    # marker's length: grow it until the two agree (a pass or three).
    marker = ""
    while True:
        cut = len(message) - (limit - len(marker))
        settled = f"...[{cut} more characters]"
        if len(settled) == len(marker):
            return message[:-cut] + settled
        marker = settled


class CheckedJobLogs:
    """The job log methods of :class:`~jobq.storage.checked.CheckedStorage`:
    arguments checked here, SQL run by the backend's :attr:`_job_logs` part."""

    _job_logs: JobLogStore

    def append_job_log(
        self, job_id: int, lines: Sequence[NewLogLine], *, keep: int = JOB_LOG_LINES
    ) -> int:
        check_int_range("keep", keep, KEEP_RANGE)
        lines = list(lines)
        for index, line in enumerate(lines):
            check_line(line, index)
        if not lines or not _is_job_id(job_id):
            return 0
        skipped = max(0, len(lines) - keep)
        return self._job_logs.append(job_id, lines[skipped:], skipped, keep)

    def job_logs(self, job_id: int) -> list[JobLogLine]:
        if not _is_job_id(job_id):
            return []
        return self._job_logs.lines(job_id)


def _is_job_id(value: object) -> bool:
    return is_int(value) and 0 < value < 2**63  # type: ignore[operator]


def logs_as_dict(job_id: int, lines: Sequence[JobLogLine]) -> dict[str, object]:
    """A job's lines as the monitor and ``jobq logs --json`` show them:
    ``{"job_id", "dropped", "lines": [{"number", "attempt", "logged_at",
    "message"}, ...]}``, ``dropped`` counting the older lines no longer kept."""
    return {
        "job_id": job_id,
        "dropped": lines[0].number - 1 if lines else 0,
        "lines": [line._asdict() for line in lines],
    }
