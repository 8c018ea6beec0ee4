"""Wake-ups across hosts: one LISTEN connection per process, shared by the
callbacks that worker pools subscribe, on a thread of its own.

Rule: imports psycopg and this backend's SQL text (the channel name) only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg

from . import sql


class Listener:
    """One LISTEN connection per process, shared by the subscribed callbacks."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._callbacks: list[Callable[[str | None], None]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, callback: Callable[[str | None], None]) -> None:
        """Call ``callback`` for each notification from now on (starts the thread)."""
        with self._lock:
            self._callbacks.append(callback)
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(
                    target=self._listen, name="jobq-postgres-listener", daemon=True
                )
                self._thread.start()

    def remove(self, callback: Callable[[str | None], None]) -> None:
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

    def _listen(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {sql.CHANNEL}")
                    self._deliver(None)  # anything enqueued while not listening
                    failures = 0
                    while not self._stopping.is_set():
                        for notice in conn.notifies(timeout=0.2):
                            self._deliver(notice.payload)
            except psycopg.Error:
                failures += 1
                self._stopping.wait(min(5.0, 0.1 * 2**failures))  # the pools keep polling

    def _deliver(self, queue: str | None) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback(queue)
