"""The foreground worker of ``jobq worker`` and ``flask jobq worker``: a pool that runs
until SIGTERM or SIGINT, then stops within a grace period.

With a health port, :class:`~jobq.cli.health.HealthServer` answers ``GET /health``
while the pool runs, and "stopping" from the signal until the process exits.

Each job's lines come from the worker itself (the ``jobq.jobs`` logger); the
foreground worker shows its DEBUG lines (started, completed) at INFO.

Rule: the queue's public methods, :mod:`jobq.worker.logs`' logger name,
:mod:`jobq.cli.output` and :mod:`jobq.cli.health`; never argparse or Flask.
:func:`run_worker` installs signal handlers, so it runs in the main thread.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from types import FrameType

from .. import defaults
from ..errors import CommandError
from ..queue import DurableQueue
from ..worker.logs import JOBS_LOGGER
from ..worker.pool import WorkerPool
from .health import DEFAULT_HEALTH_HOST, HealthServer

logger = logging.getLogger("jobq.cli")

DEFAULT_GRACE = defaults.STOP_GRACE_SECONDS
"""Seconds running jobs get to finish when a worker is told to stop."""

_WAIT_STEP = 0.1  # seconds between looks at the signal flag in the worker's main thread


class _AtInfo(logging.Filter):
    """Shows the DEBUG lines of ``jobq.jobs`` (an attempt started, a job completed)
    as INFO: a foreground worker's log says what each job did."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.DEBUG:
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


@contextmanager
def _job_lines_at_info() -> Iterator[None]:
    """While inside, the ``jobq.jobs`` logger (:mod:`jobq.worker.logs`, where the
    worker logs every attempt) also passes its DEBUG lines, as INFO, when INFO is
    enabled for it; its failure lines come from the worker as everywhere else."""
    jobs = logging.getLogger(JOBS_LOGGER)
    if not jobs.isEnabledFor(logging.INFO) or jobs.isEnabledFor(logging.DEBUG):
        yield
        return
    previous, at_info = jobs.level, _AtInfo()
    jobs.setLevel(logging.DEBUG)
    jobs.addFilter(at_info)
    try:
        yield
    finally:
        jobs.removeFilter(at_info)
        jobs.setLevel(previous)


@contextmanager
def _stop_signals() -> Iterator[list[int]]:
    """Catch SIGTERM and SIGINT while inside; yields the list of signals received.

    The handler only appends to a list: setting a threading.Event from a signal
    handler can deadlock if the main thread holds that Event's lock at the time.
    """
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    wanted = [signal.SIGTERM, signal.SIGINT]
    previous = {signum: signal.signal(signum, on_signal) for signum in wanted}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_worker(
    queue: DurableQueue,
    *,
    concurrency: int = defaults.CONCURRENCY,
    queues: Collection[str] | None = None,
    grace: float = DEFAULT_GRACE,
    health_port: int | None = None,
    health_host: str = DEFAULT_HEALTH_HOST,
    metrics: bool = False,
    counted: bool = False,
) -> int:
    """Run a worker pool in the foreground until SIGTERM or SIGINT; return an exit code.

        With ``health_port`` (0: any free port, logged at start), an HTTP health check
        listens on ``health_host``:``health_port`` (default host 127.0.0.1, this
        machine only; ``0.0.0.0`` in a container): see :mod:`jobq.cli.health`.
        With ``metrics`` too, it also answers ``GET /metrics``, a Prometheus scrape
        of this process's counters and the database's gauges (:mod:`jobq.metrics`,
        the ``prometheus`` extra); ``metrics`` without ``health_port`` is an error.
        ``counted``: the queue's jobs are counted already (a Flask app with
        ``JOBQ_METRICS``), so the scrape connects no counters of its own.

        On the signal the pool stops claiming, running jobs get ``grace`` seconds to
        finish and jobs claimed but not started are handed back (pending, attempt not
        counted). Returns 0 when every running job finished in time, 1 otherwise
        (their leases lapse and another worker runs them again) or when the pool
        ended without a signal. Must run in the
        main thread (signal handlers). Raises :class:`CommandError` for a bad option or a
    health port that cannot be listened on (before any job is claimed).
    """
    if concurrency < 1:
        raise CommandError(f"--concurrency must be at least 1, got {concurrency}")
    if not (math.isfinite(grace) and grace >= 0):
        raise CommandError(f"--grace must be a number of seconds >= 0, got {grace}")
    if metrics and health_port is None:
        raise CommandError("--metrics serves on the health check's port: give --health-port")
    scrape = _Scrape(queue, count=not counted) if metrics else None
    try:
        with _job_lines_at_info():
            signalled, finished = _run_until_signal(
                queue, concurrency, queues, grace, (health_host, health_port), scrape
            )
    finally:
        if scrape is not None:
            scrape.disconnect()
    if not signalled:
        logger.error("the worker pool stopped on its own; see the errors above")
        return 1
    if not finished:
        logger.warning("jobs were still running after %g s; their leases will lapse", grace)
        return 1
    logger.info("worker stopped")
    return 0


def _run_until_signal(
    queue: DurableQueue,
    concurrency: int,
    queues: Collection[str] | None,
    grace: float,
    health_address: tuple[str, int | None],
    scrape: _Scrape | None = None,
) -> tuple[bool, bool]:
    """Run a pool until a stop signal or its end, then stop it within ``grace``:
    (whether a signal came, whether every running job finished in time)."""
    with _stop_signals() as received:
        started: list[WorkerPool] = []
        host, port = health_address
        health = None
        if port is not None:  # bound before the pool, so a port in use claims no job
            health = HealthServer(
                host,
                port,
                queue=queue,
                pool=lambda: started[0] if started else None,
                stopping=lambda: bool(received),
                metrics=None if scrape is None else scrape.render,
            )
        try:
            pool = queue.start_workers(concurrency, queues=queues)
            started.append(pool)
            logger.info(
                "worker pid %d started: %d threads on queues %s of %s; tasks: %s",
                os.getpid(),
                concurrency,
                ", ".join(pool.queues),
                _where(queue),
                ", ".join(sorted(queue.tasks)) or "none",
            )
            if health is not None:
                health.start()
                logger.info("health check on %s", health.url)
            try:
                while not received and pool.is_alive:
                    time.sleep(_WAIT_STEP)
            finally:
                why = signal.Signals(received[0]).name if received else "the pool ended"
                logger.info("%s: stopping, running jobs have %g s to finish", why, grace)
                finished = pool.stop(grace)
        finally:
            if health is not None:
                health.close()
    return bool(received), finished


class _Scrape:
    """This worker's metrics: counters connected to the queue, and a scrape of them."""

    def __init__(self, queue: DurableQueue, *, count: bool) -> None:
        try:
            from ..metrics import CONTENT_TYPE, connect_metrics, render_metrics
        except ImportError as exc:
            raise CommandError(str(exc)) from None
        self._queue = queue
        self._content_type = CONTENT_TYPE
        self._render = render_metrics
        self._connection = connect_metrics(queue) if count else None

    def render(self) -> tuple[bytes, str]:
        return self._render(self._queue), self._content_type

    def disconnect(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()


def _where(queue: DurableQueue) -> str:
    return str(getattr(queue.storage, "path", queue.storage))
