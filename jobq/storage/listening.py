"""Wake-ups across hosts, the part every backend shares: a thread that listens on a
connection of its own and calls the callbacks worker pools subscribed
(:class:`ListenerThread`), and the one such thread per process that a storage
keeps, made anew in a forked child (:class:`ProcessListener`).

A backend writes only how to listen (PostgreSQL's LISTEN/NOTIFY, Redis pub/sub)
by implementing :meth:`ListenerThread.listen`.

Rule: imports nothing of jobq.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

logger = logging.getLogger("jobq.storage")

Callback = Callable[[str | None], None]
"""Called with a queue's name when jobs of it became runnable, or with None when
some may have been missed."""


class ListenerThread:
    """Callbacks, and the thread that runs :meth:`listen` while any is subscribed."""

    thread_name = "jobq-listener"

    def __init__(self) -> None:
        self._callbacks: list[Callback] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def listen(self) -> None:
        """Deliver wake-ups (:meth:`deliver`) until :attr:`_stopping` is set,
        reconnecting as needed; a backend implements it."""
        raise NotImplementedError

    def add(self, callback: Callback) -> None:
        """Call ``callback`` for each wake-up from now on (starts the thread)."""
        with self._lock:
            self._callbacks.append(callback)
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(
                    target=self.listen, name=self.thread_name, daemon=True
                )
                self._thread.start()

    def remove(self, callback: Callback) -> None:
        """Stop calling ``callback``; the last one removed stops the thread."""
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)
            last = not self._callbacks
        if last:
            self.stop()

    def stop(self) -> None:
        """Stop listening (waits up to 5 s for the thread)."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    def deliver(self, queue: str | None) -> None:
        """Call every subscribed callback with ``queue``."""
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(queue)
            except Exception:  # one bad subscriber must not silence the others
                logger.exception("jobq: a wake-up callback failed")


class ProcessListener:
    """The listener a storage shares between the pools of one process, made by
    ``make`` at the first :meth:`subscribe`. After ``fork()`` the child makes its
    own: the parent's thread is not running there, and its socket is not the
    child's to use."""

    def __init__(self, make: Callable[[], ListenerThread]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._listener: ListenerThread | None = None
        self._pid = os.getpid()
        self._inherited: list[ListenerThread] = []  # a parent's: kept, never used

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Add ``callback`` to this process's listener; return what removes it."""
        pid = os.getpid()
        with self._lock:
            if self._listener is not None and self._pid != pid:
                self._inherited.append(self._listener)
                self._listener = None
            if self._listener is None:
                self._listener = self._make()
                self._pid = pid
            listener = self._listener
        listener.add(callback)
        return lambda: listener.remove(callback)

    def close(self) -> None:
        """Stop this process's listener (a parent's is left alone)."""
        with self._lock:
            listener, self._listener = self._listener, None
            mine = self._pid == os.getpid()
        if mine and listener is not None:
            listener.stop()
