"""The fork server: one process per worker pool that forks the pool's children.

Forking a process that runs threads is risky: the child gets a copy of every
lock as it was at that instant, held perhaps by a thread that does not exist in
the child (a C library's lock, a connection's). So the pool forks once, when it
starts and before its own threads do, a single-threaded server; every child that
runs an attempt is then forked from that server, a clean point, as Python's
``forkserver`` start method and Celery's prefork pool do. Unlike
``multiprocessing``'s forkserver (a fresh interpreter that must import the app
again), this server is a fork of the worker, so children inherit the registered
tasks, the queue and a Flask app as they were when the pool started.

The server answers two requests on a socket: fork a child (it sends back the
child's pid and one end of a new socket pair), and wait for a child that ended
(it sends back the wait status, so the worker can say "died with signal
SIGSEGV"). It reaps a child only when asked, so a pid the worker kills is never
reused before the worker learnt how it ended. When the worker dies (even by
SIGKILL) its end of the socket closes: the server kills its children and exits.
Children also ask Linux to kill them when the server dies (``PR_SET_PDEATHSIG``),
and leave when the socket to the worker closes.

Rule: imports the standard library only; knows nothing of jobs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Protocol

_REQUEST = struct.Struct("!ci")  # what (b"F" fork, b"W" wait), pid
_NUMBER = struct.Struct("!i")
_PR_SET_PDEATHSIG = 1
_CLOSE_WAIT = 5.0  # seconds the server gets to kill its children and exit


class _Closable(Protocol):
    def close(self) -> None: ...


_worker_ends: set[_Closable] = set()
"""The worker's ends of its sockets to servers and children: closed in any process
forked from the worker, so that only the worker holds them and their peers see
end-of-file when it dies."""


def keep_private(end: _Closable) -> None:
    """Close ``end`` in every process forked from this one from now on."""
    _worker_ends.add(end)


def forget(end: _Closable) -> None:
    """Stop tracking ``end`` (it was closed)."""
    _worker_ends.discard(end)


def _close_worker_ends() -> None:
    for end in list(_worker_ends):
        with contextlib.suppress(OSError):
            end.close()
    _worker_ends.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_worker_ends)


class ForkServer:
    """A single-threaded process forked from the worker that forks children running
    ``serve(sock)`` (``sock``: their end of a socket pair with the worker).

    Raises OSError when it cannot be forked; its methods raise OSError (a
    ``TimeoutError`` after ``answer_timeout`` seconds) or EOFError when it does not
    answer. Thread-safe.
    """

    def __init__(
        self, serve: Callable[[socket.socket], None], *, answer_timeout: float = 10.0
    ) -> None:
        ours, theirs = socket.socketpair()
        with warnings.catch_warnings():
            # Python 3.12+ warns of any fork while threads run: this one is the
            # earliest point the pool has, and the server only ever forks.
            warnings.filterwarnings("ignore", ".*multi-threaded.*fork", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the server process
            code = 0
            try:
                ours.close()
                _serve(theirs, serve)
            except BaseException:
                traceback.print_exc()
                code = 70
            finally:
                os._exit(code)
        theirs.close()
        # A server that does not answer (say, it deadlocked right after the fork on
        # a lock another thread of the worker held) is given up, never waited for.
        ours.settimeout(answer_timeout)
        self.pid = pid
        self._sock = ours
        self._lock = threading.Lock()
        self._closed = False
        keep_private(ours)

    def fork(self) -> tuple[int, socket.socket]:
        """Fork a child; return its pid and the worker's end of its socket."""
        with self._lock:
            self._check_open()
            self._sock.sendall(_REQUEST.pack(b"F", 0))
            data, fds, _flags, _address = socket.recv_fds(self._sock, _NUMBER.size, 1)
            if len(fds) != 1 or len(data) != _NUMBER.size:
                for fd in fds:
                    os.close(fd)
                raise OSError("the fork server could not fork a child process")
            (pid,) = _NUMBER.unpack(data)
            return pid, socket.socket(fileno=fds[0])

    def wait(self, pid: int) -> int:
        """Wait for child ``pid`` to end (kill it first, or know it ended) and return
        its wait status (see :func:`os.waitstatus_to_exitcode`)."""
        with self._lock:
            self._check_open()
            self._sock.sendall(_REQUEST.pack(b"W", pid))
            status: int = _NUMBER.unpack(_receive(self._sock, _NUMBER.size))[0]
            return status

    def close(self, *, kill: bool = False) -> None:
        """Make the server kill its children and exit; wait for it (a few seconds
        at most, then kill it). ``kill``: kill it at once (it does not answer)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._sock.close()
            forget(self._sock)
        deadline = time.monotonic() + (0.0 if kill else _CLOSE_WAIT)
        while time.monotonic() < deadline:
            pid, _status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return
            time.sleep(0.005)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)

    def _check_open(self) -> None:
        if self._closed:
            raise OSError("the fork server was closed (the worker pool stopped)")


def _receive(sock: socket.socket, size: int) -> bytes:
    """Exactly ``size`` bytes; raises EOFError if the peer closed first."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("the peer closed the socket")
        data += chunk
    return data


def _serve(control: socket.socket, serve: Callable[[socket.socket], None]) -> None:
    """The server's loop, until the worker's end closes."""
    _quiet_signals()
    children: set[int] = set()
    try:
        while True:
            try:
                what, pid = _REQUEST.unpack(_receive(control, _REQUEST.size))
            except (EOFError, OSError):
                return
            if what == b"F":
                children.add(_fork_child(control, serve))
            else:
                _pid, status = os.waitpid(pid, 0)
                children.discard(pid)
                control.sendall(_NUMBER.pack(status))
    finally:
        for pid in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)


def _fork_child(control: socket.socket, serve: Callable[[socket.socket], None]) -> int:
    server = os.getpid()
    mine, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            control.close()
            mine.close()
            _die_with(server)
            serve(theirs)
        except BaseException:
            traceback.print_exc()
            code = 70
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    theirs.close()
    socket.send_fds(control, [_NUMBER.pack(pid)], [mine.fileno()])
    mine.close()
    return pid


def _quiet_signals() -> None:
    """The worker handles Ctrl-C and SIGTERM (a graceful stop); the server and its
    children must not run the worker's handlers, nor die of a terminal's Ctrl-C
    sent to the whole process group: the worker decides when they end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # children stay until waited for


def _die_with(parent: int) -> None:
    """Ask Linux to SIGKILL this process when ``parent`` (the server) dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the server died before the request took effect
        os._exit(0)
