"""A worker pool's child processes, and how a worker thread runs an attempt in one.

The thread that took a job of a task with ``isolation="process"`` sends the job
(its stored fields as JSON) to an idle child and waits for the answer: the
attempt's outcome as JSON. While it waits it checks, every
:data:`~jobq.defaults.ISOLATION_CHECK_INTERVAL` seconds at most and exactly at
the deadline, the task's ``timeout`` (on the queue's clock) and the job's cancel
request; either kills the child with SIGKILL, at once: a task past a hard timeout
is hung by definition, stuck in C code runs no Python signal handler, and a
grace would only keep the slot longer. A killed or crashed child is replaced by
a new one on the next attempt; the thread itself is never stuck.

There are at most as many children as threads that ran isolated attempts at once
(so at most the pool's ``concurrency``); each is forked on first need from the
pool's :class:`~.server.ForkServer` and then kept warm for the next attempt.

Rule: imports the worker's execute step, basic values and its siblings; never the pool.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from ... import defaults, tracing_hooks
from ...context import JobContext
from ...errors import ChildProcessDied, TaskTimeout
from ...job import Job
from ..execute import Outcome, execute, failure, new_context
from ..failures import error_of
from ..host import QueueHost, RunnableTask
from .server import ForkServer, forget, keep_private
from .wire import decode_job, decode_outcome, encode_job, encode_outcome

logger = logging.getLogger("jobq.worker")

CHECK_INTERVAL = defaults.ISOLATION_CHECK_INTERVAL
ANSWER_TIMEOUT = defaults.ISOLATION_SERVER_TIMEOUT


class _Child:
    __slots__ = ("conn", "job_id", "pid", "server")

    def __init__(self, pid: int, sock: socket.socket, server: ForkServer) -> None:
        self.pid = pid
        self.server = server  # its parent, which reaps it
        self.job_id: int | None = None  # the job it runs now
        self.conn = Connection(sock.detach())
        keep_private(self.conn)

    def close(self) -> None:
        forget(self.conn)
        self.conn.close()


class Children:
    """The child processes of one worker pool (none until a task needs them).

    :meth:`start` forks the server when the queue has isolated tasks (call it before
    the pool's threads start); :meth:`execute` runs an attempt in a child (same
    signature and promise as :func:`~jobq.worker.execute.execute`: never raises);
    :meth:`close` kills them all.
    """

    def __init__(self, host: QueueHost, pool_name: str) -> None:
        self._host = host
        self._pool_name = pool_name
        self._server: ForkServer | None = None
        self._known: frozenset[str] = frozenset()  # the tasks its server inherited
        self._retired: list[ForkServer] = []  # servers forked before tasks were added
        self._idle: list[_Child] = []
        self._busy: dict[int, _Child] = {}  # by pid
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        """Fork the server now if any registered task is process-isolated (the
        cleanest point: before the pool's threads start). Otherwise it is forked
        when the first such attempt comes."""
        if any(task.isolation == "process" for task in self._host.tasks.values()):
            with self._lock:
                self._serve()

    def close(self) -> None:
        """Kill every child and the server (the pool stopped). Threads waiting on
        a child see it die; their outcomes are no longer recorded then."""
        with self._lock:
            self._closed = True
            idle, busy = list(self._idle), list(self._busy.values())
            self._idle.clear()
            servers = [*self._retired, *([self._server] if self._server else [])]
            self._server = None
            self._retired.clear()
        for child in (*idle, *busy):
            with contextlib.suppress(OSError):
                os.kill(child.pid, signal.SIGKILL)
        for server in servers:
            server.close()  # it reaps its children
        for child in idle:  # a busy one's thread sees it die, and closes its end itself
            child.close()

    def describe(self, entry: dict[str, Any]) -> dict[str, Any]:
        """``entry`` of ``WorkerPool.running()`` with ``child_pid``: the pid of the
        child running its attempt, or None (thread mode, or between two children)."""
        pid = None
        if entry.get("isolation") == "process":
            with self._lock:
                pid = next((c.pid for c in self._busy.values() if c.job_id == entry["id"]), None)
        entry["child_pid"] = pid
        return entry

    def pids(self) -> list[int]:
        """The pids of the children alive now (busy or idle)."""
        with self._lock:
            return [child.pid for child in (*self._idle, *self._busy.values())]

    def execute(self, host: QueueHost, job: Job, context: JobContext) -> Outcome:
        """Run one attempt of ``job`` in a child and say how it went. Never raises."""
        task = host.tasks.get(job.name)
        if task is None:  # unregistered since the claim: let the usual path say so
            return execute(host, job, context)
        if job.name not in self._known:
            self._learn(job.name)
        try:
            child = self._send(encode_job(job))
        except Exception as exc:
            reason = "no child process could be started to run the task"
            return failure(task, job, exc, error=error_of(exc, context=reason))
        child.job_id = job.id
        try:
            return self._wait(child, task, job, context)
        except Exception as exc:  # the server is gone: the pool is closing
            self._discard(child)
            reason = "the child process running the task was lost"
            return failure(task, job, exc, error=error_of(exc, context=reason))

    def _send(self, request: bytes) -> _Child:
        """Send ``request`` to an idle child (a new one if none is idle, or if the
        idle one died in the meantime); return the child."""
        child = self._take()
        try:
            child.conn.send_bytes(request)
        except OSError:  # it died while idle (e.g. the OOM killer): once more, anew
            self._reap(child)
            child = self._take()
            child.conn.send_bytes(request)
        return child

    def _take(self) -> _Child:
        with self._lock:
            child = self._idle.pop() if self._idle else self._fork()
            self._busy[child.pid] = child
            return child

    def _fork(self) -> _Child:
        """A new child; a new server first if the one running died (the OOM killer
        may pick it too) or does not answer. Lock held."""
        server = self._serve()
        try:
            pid, sock = server.fork()
        except (OSError, EOFError):
            logger.warning(
                "jobq worker pool %s: the fork server of isolated tasks died or did not "
                "answer; starting another",
                self._pool_name,
            )
            self._server = None
            server.close(kill=True)  # its children die with it (PR_SET_PDEATHSIG)
            server = self._serve()
            pid, sock = server.fork()
        return _Child(pid, sock, server)

    def _serve(self) -> ForkServer:
        """The fork server, forked now if needed. Lock held."""
        if self._closed:
            raise RuntimeError(f"the worker pool {self._pool_name} stopped")
        if self._server is None:
            self._known = frozenset(self._host.tasks)
            self._server = ForkServer(_serve_attempts(self._host), answer_timeout=ANSWER_TIMEOUT)
        return self._server

    def _learn(self, name: str) -> None:
        """Task ``name`` was registered after the server was forked: fork a new
        server that knows it (from the running worker: not as clean a point as the
        pool's start). Children of the old one finish their attempts first."""
        with self._lock:
            if name in self._known or self._server is None:
                return
            self._retired.append(self._server)
            self._server = None
            idle, self._idle = self._idle, []
        for child in idle:
            child.close()  # it sees end-of-file and exits; its server reaps it at the end

    def _wait(self, child: _Child, task: RunnableTask, job: Job, context: JobContext) -> Outcome:
        clock = self._host.clock
        timeout = task.timeout
        deadline = None if timeout is None else clock.now() + timeout
        conn = child.conn
        while True:
            wait = CHECK_INTERVAL
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - clock.now()))
            if conn.poll(wait):
                try:
                    answer = conn.recv_bytes()
                except (EOFError, OSError):
                    return self._died(child, task, job)
                self._give_back(child)
                return decode_outcome(answer)
            if context.cancel_requested:
                self._kill(child)
                return Outcome("cancelled")
            if timeout is not None and deadline is not None and clock.now() >= deadline:
                self._kill(child)
                self._log_killed(job, timeout)
                return failure(task, job, TaskTimeout(timeout, job.name, killed=True))

    def _give_back(self, child: _Child) -> None:
        with self._lock:
            self._busy.pop(child.pid, None)
            child.job_id = None
            if not self._closed and child.server is self._server:
                self._idle.append(child)
                return
        child.close()

    def _kill(self, child: _Child) -> None:
        with contextlib.suppress(OSError):
            os.kill(child.pid, signal.SIGKILL)
        self._reap(child)

    def _reap(self, child: _Child) -> int | None:
        """Forget ``child`` (it ended or was killed); return its exit code as
        :func:`os.waitstatus_to_exitcode` says (negative: the signal), or None."""
        self._discard(child)
        try:
            return os.waitstatus_to_exitcode(child.server.wait(child.pid))
        except (OSError, EOFError):  # the pool stopped: its server is gone
            return None

    def _discard(self, child: _Child) -> None:
        with self._lock:
            self._busy.pop(child.pid, None)
        child.close()

    def _died(self, child: _Child, task: RunnableTask, job: Job) -> Outcome:
        code = self._reap(child)
        signal_name = None
        if code is not None and code < 0:
            try:
                signal_name = signal.Signals(-code).name
            except ValueError:
                signal_name = str(-code)
        died = ChildProcessDied(signal_name, None if signal_name else code)
        logger.warning(
            "jobq worker pool %s: job %d (%s): %s; a new child takes the next attempt",
            self._pool_name,
            job.id,
            job.name,
            died,
        )
        return failure(task, job, died)

    def _log_killed(self, job: Job, timeout: float) -> None:
        logger.warning(
            "jobq worker pool %s: job %d (%s) passed its timeout of %g s; its child "
            "process was killed",
            self._pool_name,
            job.id,
            job.name,
            timeout,
        )


def _serve_attempts(host: QueueHost) -> Callable[[socket.socket], None]:
    """What each child runs: attempts, one after another, until the worker's end closes."""

    def serve(sock: socket.socket) -> None:
        conn = Connection(sock.detach())
        tracing_hooks.active = None  # the worker's exporter threads do not cross fork()
        while True:
            try:
                request = conn.recv_bytes()
            except (EOFError, OSError):
                return
            job = decode_job(request)
            outcome = execute(host, job, new_context(host, job))
            for stream in (sys.stdout, sys.stderr):  # what it printed shows now, not at exit
                with contextlib.suppress(Exception):
                    stream.flush()
            conn.send_bytes(encode_outcome(outcome))

    return serve
