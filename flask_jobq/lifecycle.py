"""When an app's workers start and stop: per serving process, after ``fork()``, on SIGTERM.

:func:`arrange_workers` is called by ``init_app`` for each app; the hooks here
are process-wide (one SIGTERM handler, one fork hook for every app's state).

When workers start
------------------
A pool is a set of threads, and threads do not survive ``fork()``, so the pool
is started by the process that serves requests, not by whoever created the app:

- on the first request each process handles (a ``before_request`` hook that
  compares ``os.getpid()`` with the pid that started the pool). That covers
  gunicorn with or without ``--preload`` (the master creates the app but never
  serves, each forked worker starts its own pool on its first request), uWSGI,
  ``multiprocessing`` children, and it never starts threads in ``flask shell``,
  ``flask db upgrade`` or a test that only builds the app;
- at once in ``init_app`` in the serving child of the Werkzeug reloader
  (``flask run --debug``): ``werkzeug.serving.is_running_from_reloader()`` is
  true only there. The reloader's parent also imports the app (Flask loads it
  to report errors early) but only watches files and restarts the child, so it
  never starts workers;
- whenever :meth:`JobQ.start_workers` is called, e.g. in a process that serves
  no requests, or from gunicorn's ``post_worker_init`` hook to start before
  the first request (a gunicorn worker that has served nothing yet runs no jobs;
  the others do).

Threads are not started from an ``os.register_at_fork`` hook: it would run in
every fork of the process (a daemonising library, a ``multiprocessing``
helper), before the server has set up its child (signals, hooks), while the
first request is the moment the process is known to serve the app.

A pool inherited through ``fork()`` has no threads in the child; it is
forgotten there and a new one starts as above. ``JOBQ_START_WORKERS = False``
turns the automatic starts off (for a separate worker process).

When workers stop
-----------------
At interpreter exit the core stops every pool, letting running jobs finish (30
s at most) and handing back unstarted ones. Ctrl-C (KeyboardInterrupt) ends
that way, and so does SIGTERM under gunicorn, whose workers handle it and exit
normally. Python's default for SIGTERM is to die at once, without atexit, so
where its handler is still the default when ``init_app`` runs in the main
thread (``flask run``, ``python app.py``, the master of gunicorn ``--preload``
before gunicorn installs its own), ``init_app`` installs one that stops this
process's pools the same way and then dies of SIGTERM as the default would
have (same exit status). A handler someone else installed is never replaced,
and one installed later replaces ours. A job still running when the process is
killed outright is not lost: its lease expires and another worker runs it again.

Rule: imports :mod:`flask_jobq.state`, Flask and Werkzeug; never the extension,
views or command line.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import weakref
from types import FrameType

from flask import Flask
from werkzeug.serving import is_running_from_reloader

from .state import STOP_TIMEOUT, JobQState

logger = logging.getLogger("flask_jobq.extension")  # the logger's name users configure

_states: weakref.WeakSet[JobQState] = weakref.WeakSet()  # every live app state of this process
_sigterm_lock = threading.Lock()
_sigterm_installed = False
_terminating = False  # set by our SIGTERM handler: requests must not start pools any more


def arrange_workers(app: Flask, state: JobQState) -> None:
    """Look after ``state`` in this process: reset it after ``fork()``, stop its pool
    on SIGTERM, and, with ``JOBQ_START_WORKERS``, start its pool on each serving
    process's first request (at once in the Werkzeug reloader's serving child)."""
    _states.add(state)
    if not state.start_automatically:
        return

    def start_before_first_request() -> None:
        if not state.runs_workers_here() and not state.closed and not _terminating:
            state.start_workers()

    app.before_request(start_before_first_request)
    _install_sigterm_handler()
    if is_running_from_reloader():
        state.start_workers()


def _install_sigterm_handler() -> None:
    global _sigterm_installed
    with _sigterm_lock:
        if _sigterm_installed or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return  # a server handles SIGTERM and exits normally: atexit stops the pools
        signal.signal(signal.SIGTERM, _on_sigterm)
        _sigterm_installed = True


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork() stays held in the child forever;
    # the child's first request must be able to start its pool.
    for state in list(_states):
        state.reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _terminating
    _terminating = True  # request threads keep serving while the pools stop
    for state in [state for state in _states if not state.closed]:
        try:
            state.stop_workers(STOP_TIMEOUT)
        except Exception:
            logger.exception("jobq: stopping the workers of app %r failed", state.app.name)
    # Then die of the signal, as the default handler would have, exit status included.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
