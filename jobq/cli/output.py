"""What the command lines print: tables, JSON, and text a terminal shows but never obeys.

Tables of jobs, stats, schedules and live workers, the JSON records of ``--json``,
:func:`terminal_safe` for any text from job data, :class:`TerminalSafeFormatter`
and :func:`configure_logging` for the worker's log. Shared by ``jobq`` and
``flask jobq``.

Rule: standard library, :mod:`jobq.job`, :mod:`jobq.render`, the schedules' and
storage's value types only; never the queue, a worker or Flask.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

from ..job import Job, JobStatus
from ..render import job_to_dict
from ..schedules import ScheduleInfo
from ..storage.base import Stats
from ..storage.job_logs import JobLogLine
from ..storage.workers import WorkerInfo

# -- text safe for a terminal ----------------------------------------------------------


def _escape(code: int) -> str:
    named = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
    if code in named:
        return named[code]
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


# C0 controls (ESC among them, which starts every escape sequence), DEL, C1 controls
# (0x9b is a one-character CSI for terminals that read them), and the bidirectional
# controls that make text shown differ from text stored.
_CONTROLS = [
    *range(0x20),
    0x7F,
    *range(0x80, 0xA0),
    0x061C,
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
]
_ESCAPES = {chr(code): _escape(code) for code in _CONTROLS}
_ONE_LINE = re.compile("[" + "".join(map(re.escape, _ESCAPES)) + "]")
_LINES = re.compile("[" + "".join(re.escape(c) for c in _ESCAPES if c not in "\t\n") + "]")


def terminal_safe(text: str, *, keep_lines: bool = False) -> str:
    """``text`` with every control character written as a visible escape, for a terminal.

    C0 controls (ESC, BEL, CR, ...), DEL, C1 controls (``\\x9b`` is a CSI to
    some terminals) and the bidirectional controls (U+202E, ...) become
    ``\\x1b``, ``\\r``, ``\\u202e``..., so text from job data (a task's error,
    an answer a webhook got, a queue name) can neither clear the screen, set
    the window title, write the clipboard (OSC 52) nor forge a line of output.
    Newlines and tabs are escaped too, unless ``keep_lines`` (for text of
    several lines, such as a traceback). Other characters, backslashes
    included, are left as they are. Text already escaped is unchanged.
    """
    # A search first: most text has nothing to escape, and re finds that fastest.
    pattern = _LINES if keep_lines else _ONE_LINE
    if pattern.search(text) is None:
        return text
    return pattern.sub(lambda match: _ESCAPES[match.group()], text)


_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class TerminalSafeFormatter(logging.Formatter):
    """A :class:`logging.Formatter` whose output a terminal shows and never obeys.

    Each record's line is passed through :func:`terminal_safe`, newlines
    included, so a message carrying job data stays on one line. A traceback or
    stack keeps its lines, each indented by two spaces: an exception message of
    several lines cannot pass for a record of its own. ``jobq worker`` and
    ``flask jobq worker`` log through one (:func:`configure_logging`).
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().formatMessage(record))

    def formatException(self, ei: _ExcInfo) -> str:
        return _indented(terminal_safe(super().formatException(ei), keep_lines=True))

    def formatStack(self, stack_info: str) -> str:
        return _indented(terminal_safe(super().formatStack(stack_info), keep_lines=True))


def _indented(text: str) -> str:
    return "\n".join("  " + line for line in text.split("\n"))


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr with times, at ``level``, unless the root logger is set up already.

    Lines go through :class:`TerminalSafeFormatter`: job data in them (names, error
    texts, a webhook receiver's answer) cannot send escape sequences to the terminal.
    An app that set up logging itself keeps its own handlers and formatters.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TerminalSafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])


# -- records and tables -------------------------------------------------------------


def job_record(job: Job) -> dict[str, Any]:
    """A job as ``--json`` shows it (:func:`jobq.render.job_to_dict`): payload, result
    and progress decoded (text that is not JSON shown as it is), the lease's owner and
    expiry; times are epoch seconds. The lease token is left out."""
    return job_to_dict(job, payload=True, lease=True, keep_invalid_json=True)


def stats_record(stats: Stats) -> dict[str, Any]:
    """:meth:`DurableQueue.stats` as a JSON-ready dict (counts keyed by status value)."""
    return {
        "queues": {
            name: {
                "counts": {status.value: count for status, count in entry.counts.items()},
                "scheduled": entry.scheduled,
                "oldest_runnable_age": entry.oldest_runnable_age,
                "paused": name in stats.paused,
                "waiting": entry.waiting,
            }
            for name, entry in sorted(stats.queues.items())
        },
        "completed_last_minute": stats.completed_last_minute,
        "failed_last_minute": stats.failed_last_minute,
        "paused": sorted(stats.paused),
    }


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces, numbers aligned right; every
    cell one line, shown with :func:`terminal_safe`."""
    cells = [[terminal_safe(str(cell)) for cell in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    numeric = [
        all(isinstance(row[i], (int, float)) for row in rows) and bool(rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        columns = zip(values, widths, numeric, strict=True)
        parts = [v.rjust(w) if n else v.ljust(w) for v, w, n in columns]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers)] + [line(row) for row in cells])


def format_time(epoch: float | None) -> str:
    """Epoch seconds as ``"2026-06-01 12:00:00"`` in UTC; ``"-"`` for None."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _age(seconds: float) -> str:
    if seconds <= 0:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


def format_stats(stats: Stats) -> str:
    """:meth:`DurableQueue.stats` as a table, one row per queue, and a summary line."""
    statuses = list(JobStatus)
    headers = ["QUEUE", *(s.value.upper() for s in statuses), "SCHEDULED", "OLDEST", "PAUSED"]
    rows: list[list[object]] = [
        [
            name,
            *(entry.counts.get(s, 0) for s in statuses),
            entry.scheduled,
            _age(entry.oldest_runnable_age),
            "yes" if name in stats.paused else "no",
        ]
        for name, entry in sorted(stats.queues.items())
    ]
    table = format_table(headers, rows) if rows else "no jobs"
    return (
        f"{table}\nlast minute: {stats.completed_last_minute} completed, "
        f"{stats.failed_last_minute} failed"
    )


def format_jobs(jobs: Sequence[Job]) -> str:
    """Jobs as a table: id, status, queue, task, attempts, run at, last error (UTC times).
    A pending job that waits for others (``depends_on``) shows as ``waiting``."""
    if not jobs:
        return "no jobs"
    rows = [
        [
            job.id,
            "waiting" if job.waiting else job.status.value,
            job.queue,
            job.name,
            f"{job.attempts}/{job.max_attempts}",
            format_time(job.run_at),
            shorten(job.error.type + ": " + job.error.message) if job.error else "-",
        ]
        for job in jobs
    ]
    return format_table(
        ["ID", "STATUS", "QUEUE", "TASK", "ATTEMPTS", "RUN AT (UTC)", "ERROR"], rows
    )


def format_job_logs(job_id: int, lines: Sequence[JobLogLine]) -> str:
    """A job's log lines, one a row: time (UTC), attempt, message (terminal-safe,
    on one line); first a note of the older lines dropped, if any."""
    if not lines:
        return f"job {job_id} has no log lines"
    text = [f"{lines[0].number - 1} older line(s) dropped"] if lines[0].number > 1 else []
    text += [
        f"{format_time(line.logged_at)}  attempt {line.attempt}  {terminal_safe(line.message)}"
        for line in lines
    ]
    return "\n".join(text)


def describe_schedule(info: ScheduleInfo) -> str:
    """When a schedule fires: ``"cron '0 3 * * *' (Europe/Paris)"`` or ``"every 300 s"``."""
    if info.every is not None:
        return f"every {info.every:g} s"
    return f"cron {info.cron!r} ({info.tz})"


def format_schedules(schedules: Sequence[ScheduleInfo]) -> str:
    """Schedules as a table: name, task, when, next and last fire (UTC), last job, paused.
    A paused schedule has no next fire: resuming picks the next one after then."""
    if not schedules:
        return (
            "no schedules (a schedule is stored when code declares it with "
            "queue.schedule or @queue.periodic: import that code, e.g. with --app)"
        )
    rows = [
        [
            info.name,
            info.task,
            describe_schedule(info),
            "-" if info.paused else format_time(info.next_fire_at),
            format_time(info.last_fire_at),
            "-" if info.last_job_id is None else info.last_job_id,
            "yes" if info.paused else "no",
        ]
        for info in schedules
    ]
    return format_table(
        ["NAME", "TASK", "WHEN", "NEXT FIRE (UTC)", "LAST FIRE (UTC)", "LAST JOB", "PAUSED"], rows
    )


def format_workers(workers: Sequence[WorkerInfo], now: float | None = None) -> str:
    """Live worker pools as a table: host, pid, name, queues, threads, jobs leased,
    started and last seen (UTC), and whether it is stopping; then, under each pool
    with busy threads, one line per thread: its job, task and seconds running at
    ``now`` (epoch seconds, default the time of the call), and since when it is stuck."""
    if not workers:
        return "no live workers (a pool registers as it starts: run 'jobq worker')"
    table = _workers_table(workers)
    busy = _busy_threads(workers, time.time() if now is None else now)
    return f"{table}\n\n{busy}" if busy else table


def _busy_threads(workers: Sequence[WorkerInfo], now: float) -> str:
    rows = [
        [
            info.owner,
            thread.thread,
            thread.job_id,
            thread.task,
            f"{max(0.0, now - thread.started_at):.1f}",
            "-" if thread.stuck_since is None else format_time(thread.stuck_since),
        ]
        for info in workers
        for thread in info.threads
    ]
    if not rows:
        return ""
    return format_table(["POOL", "THREAD", "JOB", "TASK", "RUNNING (S)", "STUCK SINCE (UTC)"], rows)


def _workers_table(workers: Sequence[WorkerInfo]) -> str:
    rows = [
        [
            info.host,
            info.pid,
            info.name,
            ",".join(info.queues),
            info.concurrency,
            info.leased,
            format_time(info.started_at),
            format_time(info.last_seen_at),
            "stopping" if info.stopping else "running",
        ]
        for info in workers
    ]
    headers = ["HOST", "PID", "NAME", "QUEUES", "THREADS", "LEASED", "STARTED (UTC)"]
    return format_table([*headers, "LAST SEEN (UTC)", "STATE"], rows)


def quote_name(name: str, width: int = 200) -> str:
    """``repr(name)``, cut after ``width`` characters of the name (a name may be long)."""
    if len(name) <= width:
        return repr(name)
    return f"{name[:width]!r}... ({len(name)} characters)"


def shorten(text: str, width: int = 60) -> str:
    """``text`` on one line (runs of whitespace made one space), cut to ``width``
    characters with ``...`` when longer."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def dump_json(value: Any) -> str:
    """``value`` as JSON indented by two spaces, keys in their given order."""
    return json.dumps(value, indent=2, sort_keys=False)
