"""When an app's workers start and stop: at once in each serving process, after
``fork()``, on SIGTERM.

:func:`arrange_workers` is called by ``init_app`` for each app; the hooks here
are process-wide (one SIGTERM handler, one fork hook for every app's state).

When workers start
------------------
The rule: **workers start as soon as a process is known to serve the app, and
only there.** A pool is a set of threads, threads do not survive ``fork()``, and
a process that creates the app is not always one that serves it, so
:func:`flask_jobq.serving.process_role` first says what the process is, and:

- a process known to serve starts its pool once the app is built, before any
  request: a gunicorn worker when its run loop begins (after gunicorn's
  ``post_fork`` and ``post_worker_init`` hooks, so the app and its other
  extensions are fully set up; gunicorn without ``--preload``), ``flask run``
  (without the reloader, or in the reloader's serving child) once Flask has
  loaded the app, ``python app.py`` when ``app.run()`` is called (in the
  reloader's child only when it reloads);
- a process known to fork the servers starts nothing and leaves the start to
  the children it forks: the gunicorn master with ``--preload`` (each worker it
  spawns, a replacement for a killed one included, starts its pool when its run
  loop begins) and the uWSGI master (each worker, through uWSGI's post-fork
  hook);
- a process known not to serve never starts workers: ``flask shell``, ``flask
  routes``, ``flask jobq stats``, ``flask db upgrade`` and every other ``flask``
  command but ``run``, and the Werkzeug reloader's watching parent;
- anywhere else (another server, uWSGI with ``lazy-apps``, a ``multiprocessing``
  child) the first request the process handles starts its pool, as a fallback;
- a testing app (``app.testing``, read when the start would happen) starts no
  workers at all: tests run jobs themselves (``queue.run_until_empty()``) or
  set ``JOBQ_INLINE``; :meth:`JobQ.start_workers` starts them anywhere, on
  demand (a separate process, a test of real threads, gunicorn's
  ``post_worker_init`` hook if you prefer it).

Why not start in ``init_app`` or in an ``os.register_at_fork`` hook? ``init_app``
runs before the app is finished: a job claimed then may name a task whose module
is imported later (it would fail as unknown) or need an extension initialised
later. And a process forks for many reasons (a daemonising library, a
``multiprocessing`` helper, gunicorn re-executing itself on SIGUSR2): a fork
hook starts workers only in a child of a known pre-fork master, and only when
the call stack shows that master spawning a worker; every other child merely
forgets the pool it inherited. ``JOBQ_START_WORKERS = False`` turns the
automatic starts off (for a separate ``flask jobq worker``).

A pool inherited through ``fork()`` has no threads in the child; it is
forgotten there and a new one starts as above.

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

Rule: imports :mod:`flask_jobq.state`, :mod:`flask_jobq.serving`, Flask and
Werkzeug; never the extension, views or command line.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import signal
import sys
import threading
import time
import weakref
from types import FrameType
from typing import Any

from flask import Flask
from flask.cli import ScriptInfo
from flask.helpers import get_debug_flag
from werkzeug.serving import is_running_from_reloader

from .serving import Role, gunicorn_worker_being_spawned, process_role
from .state import STOP_TIMEOUT, JobQState

logger = logging.getLogger("flask_jobq.extension")  # the logger's name users configure

_states: weakref.WeakSet[JobQState] = weakref.WeakSet()  # every live app state of this process
_prefork_states: weakref.WeakSet[JobQState] = weakref.WeakSet()  # created in a pre-fork master
_sigterm_lock = threading.Lock()

LOAD_WAIT = 300.0
"""Seconds ``flask run`` may take to finish loading the app before workers would start."""
LOAD_POLL = 0.01
"""Seconds between looks at whether ``flask run`` has finished loading the app."""
_sigterm_installed = False
_terminating = False  # set by our SIGTERM handler: requests must not start pools any more


def arrange_workers(app: Flask, state: JobQState) -> None:
    """Look after ``state`` in this process: reset it after ``fork()``, stop its pool
    on SIGTERM, and, with ``JOBQ_START_WORKERS``, start its pool where and when the
    module documentation says."""
    _states.add(state)
    if not state.settings.start_workers:
        return
    found = process_role()
    if found.role is Role.NOT_SERVING:
        return
    _install_sigterm_handler()
    app.before_request(lambda: start_if_wanted(state))  # the fallback, cheap once started
    if found.role is Role.GUNICORN_WORKER and found.gunicorn_worker is not None:
        _start_when_running(found.gunicorn_worker, state)
    elif found.role is Role.PREFORK_GUNICORN:
        _prefork_states.add(state)
    elif found.role is Role.PREFORK_UWSGI:
        _start_in_uwsgi_workers(state)
    elif found.role is Role.FLASK_RUN and found.script_info is not None:
        _start_when_loaded(found.script_info, app, state)
    elif found.role is Role.UNKNOWN:
        _start_when_run(app, state)


def start_if_wanted(state: JobQState) -> None:
    """Start ``state``'s pool in this process unless it runs here already, the state is
    closed, SIGTERM came, or the app does not start workers by itself (now: testing)."""
    if (
        state.start_automatically
        and not state.runs_workers_here()
        and not state.closed
        and not _terminating
    ):
        state.start_workers()


def _start_logged(state: JobQState) -> None:
    # Outside a request a failure must not take the server down: it is logged, the
    # health endpoint answers 503, and the next request tries again.
    try:
        start_if_wanted(state)
    except Exception:
        logger.exception("jobq: starting the workers of app %r failed", state.app.name)


def _start_when_running(worker: Any, state: JobQState) -> None:
    """Start the pool when the gunicorn ``worker`` enters its run loop."""
    run = worker.run

    def run_with_jobq_workers() -> None:
        _start_logged(state)
        run()

    worker.run = run_with_jobq_workers


def _start_when_loaded(info: ScriptInfo, app: Flask, state: JobQState) -> None:
    """``flask run``: start the pool once Flask has finished loading ``app`` (its
    ``ScriptInfo`` keeps the app it loaded), from a short-lived thread."""

    def wait_then_start() -> None:
        deadline = time.monotonic() + LOAD_WAIT
        while getattr(info, "_loaded_app", app) is not app:
            if time.monotonic() > deadline:
                return  # the app never loaded; the first request starts it if it does
            time.sleep(LOAD_POLL)
        _start_logged(state)

    threading.Thread(target=wait_then_start, name="flask-jobq-start", daemon=True).start()


def _start_when_run(app: Flask, state: JobQState) -> None:
    """``python app.py``: start the pool when ``app.run()`` serves in this process."""
    run = app.run

    @functools.wraps(run)
    def run_with_jobq_workers(*args: Any, **kwargs: Any) -> None:
        debug = args[2] if len(args) > 2 else kwargs.get("debug")  # run(host, port, debug)
        if _run_serves_here(app, debug, kwargs.get("use_reloader")):
            _start_logged(state)
        run(*args, **kwargs)

    app.__dict__["run"] = run_with_jobq_workers  # this app only, not the Flask class


def _run_serves_here(app: Flask, debug: bool | None, use_reloader: bool | None) -> bool:
    """Whether ``app.run(debug=debug, use_reloader=use_reloader)`` serves in this
    process, by Flask's and Werkzeug's own rules (not in the reloader's parent)."""
    if os.environ.get("FLASK_RUN_FROM_CLI") == "true":
        return False  # app.run() does nothing under the flask command
    if debug is None:
        debug = get_debug_flag() if "FLASK_DEBUG" in os.environ else app.debug
    reload = debug if use_reloader is None else use_reloader
    return not reload or is_running_from_reloader()


def _start_in_uwsgi_workers(state: JobQState) -> None:
    try:
        postfork = importlib.import_module("uwsgidecorators").postfork
    except ImportError:
        logger.warning(
            "jobq: uwsgidecorators is not importable; workers of app %r start on each "
            "uWSGI worker's first request",
            state.app.name,
        )
        return
    postfork(lambda: _start_logged(state))


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
    # the child must be able to start its pool.
    for state in list(_states):
        state.reset_after_fork()
    if _prefork_states:
        worker = gunicorn_worker_being_spawned(sys._getframe(1))
        if worker is not None:
            for state in list(_prefork_states):
                _start_when_running(worker, state)


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
