"""What "healthy" means for a process that serves a queue, in one place: the web
endpoint (``GET /jobq/health`` of :mod:`flask_jobq`) and the worker's own check
(``jobq worker --health-port``) both answer with :func:`check_health`.

Healthy means: the queue's database answers; where this process should run
workers, its pool is alive; with ``max_age``, no job of an unpaused queue has
been runnable for longer; and the process is not stopping. Only index seeks are
read (:meth:`~jobq.DurableQueue.oldest_runnable_age`), never counts, so a probe
every few seconds costs next to nothing.

Rule: the worker sits below the queue, so the queue and the pool come in as the
narrow protocols below; nothing here does I/O of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol


class AnswersAge(Protocol):
    """What the check needs of a queue (:class:`~jobq.DurableQueue` has it)."""

    def oldest_runnable_age(self) -> float:
        """Seconds the oldest runnable job of an unpaused queue has waited; 0.0 if none."""
        ...


class RunsWorkers(Protocol):
    """What the check needs of a worker pool (:class:`~jobq.worker.WorkerPool` has it)."""

    @property
    def is_alive(self) -> bool:
        """True while the pool's dispatcher runs."""
        ...


@dataclass(frozen=True)
class HealthReport:
    """The answer of :func:`check_health`.

    ``healthy`` is True when ``problems`` is empty; each problem is one sentence
    for a person reading a probe's answer. ``oldest_runnable_age`` is in seconds,
    None when the database did not answer; ``max_age`` is the limit asked for
    (seconds) or None.
    """

    healthy: bool
    queue_reachable: bool
    workers_expected: bool
    workers_alive: bool
    stopping: bool
    oldest_runnable_age: float | None
    max_age: float | None
    problems: tuple[str, ...]

    @property
    def status(self) -> str:
        """``"ok"``, ``"stopping"`` (the process is shutting down) or ``"unavailable"``."""
        if self.healthy:
            return "ok"
        return "stopping" if self.stopping else "unavailable"

    @property
    def http_status(self) -> int:
        """200 when healthy, else 503."""
        return 200 if self.healthy else 503

    def details(self) -> dict[str, Any]:
        """The fields as JSON-ready values (``problems`` a list), without ``status`` and
        ``stopping`` (which ``status`` says)."""
        return {
            "healthy": self.healthy,
            "queue_reachable": self.queue_reachable,
            "workers_expected": self.workers_expected,
            "workers_alive": self.workers_alive,
            "oldest_runnable_age": self.oldest_runnable_age,
            "max_age": self.max_age,
            "problems": list(self.problems),
        }


def check_health(
    queue: AnswersAge,
    *,
    pool: RunsWorkers | None = None,
    workers_expected: bool = False,
    max_age: float | None = None,
    stopping: bool = False,
) -> HealthReport:
    """Check a queue and (where ``workers_expected``) its worker ``pool`` now.

    ``max_age``: seconds, >= 0, or None for no limit on how long a runnable job may
    wait. ``stopping``: the process received its stop signal (a worker draining
    its running jobs), reported as a problem so an orchestrator stops routing to
    it. Never raises for a database that does not answer: that is a problem in the
    report. Raises :class:`ValueError` for a ``max_age`` that is negative or not
    finite (see :func:`parse_max_age` for text).
    """
    if max_age is not None and not (math.isfinite(max_age) and max_age >= 0):
        raise ValueError(f"max_age must be a number of seconds >= 0, got {max_age!r}")
    problems: list[str] = []
    if stopping:
        problems.append("the process is stopping: running jobs are finishing")
    oldest: float | None = None
    try:
        oldest = queue.oldest_runnable_age()
    except Exception as exc:  # any failure to answer is what a health check reports
        problems.append(f"the queue's database did not answer: {type(exc).__name__}: {exc}")
    else:
        if max_age is not None and oldest > max_age:
            problems.append(
                f"a job has been runnable for {oldest:.1f} s, more than max_age {max_age:g} s"
            )
    alive = pool is not None and pool.is_alive
    if workers_expected and not alive:
        problems.append("no worker pool is running in this process")
    return HealthReport(
        healthy=not problems,
        queue_reachable=oldest is not None,
        workers_expected=workers_expected,
        workers_alive=alive,
        stopping=stopping,
        oldest_runnable_age=oldest,
        max_age=max_age,
        problems=tuple(problems),
    )


def parse_max_age(text: str | None) -> float | None:
    """The ``max_age`` of a probe's query string: seconds from ``text``, None when it
    was not given. Raises :class:`ValueError` with a message for the caller to show
    (not a number, negative, infinite or NaN)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"max_age must be a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"max_age must be a number of seconds >= 0, got {text!r}")
    return value
