"""Fewer NOTIFYs for one-by-one enqueues, and never a wake-up lost.

A ``pg_notify`` in an enqueue's transaction wakes every listening pool; it costs
the enqueue about 30 µs (measured with one idle listener), some 8% of a
one-by-one enqueue. When this process notified the same queue less than
:data:`WINDOW` ago, the pools it woke are still claiming (or about to), so the
enqueue skips its own notify and, once its transaction has committed, owes one:
a thread of this process sends one NOTIFY for all owed queues when the window
ends. Every job committed is thus followed within the window by a notify sent
after its commit, so an idle pool anywhere always hears of it; pools also keep
polling. Pickup of a job enqueued alone (more than a window after the last one)
is unchanged: it notifies in its own transaction.

Rule: imports this backend's connections and SQL text; knows no other job SQL.
"""

from __future__ import annotations

import os
import threading
import time

from ..base import StorageError
from . import sql
from .connection import Database

WINDOW = 0.001
"""Seconds after a notify of a queue during which this process's enqueues to it
defer theirs to the end of the window (1 ms: within the 3 ms pickup goal)."""


class Wakeups:
    """Which queues this process notified when, and the notifies it owes."""

    def __init__(self, db: Database, window: float = WINDOW) -> None:
        self._db = db
        self._window = window
        self._sent: dict[str, float] = {}  # queue -> monotonic time of its last notify
        self._owed: set[str] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._stopping = False

    def may_defer(self, queue: str) -> bool:
        """True if an enqueue to ``queue`` may leave its notify out, provided it
        calls :meth:`owe` after its commit."""
        sent = self._sent.get(queue)
        return sent is not None and time.monotonic() - sent < self._window

    def sent(self, queue: str) -> None:
        """An enqueue to ``queue`` notified in its transaction, just committed."""
        self._sent[queue] = time.monotonic()

    def owe(self, queue: str) -> None:
        """A job of ``queue`` committed without a notify: send one at the window's end."""
        with self._cond:
            if self._pid != os.getpid():  # forked: the parent's thread is not here
                self._pid, self._thread, self._owed = os.getpid(), None, set()
            self._owed.add(queue)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="jobq-postgres-wakeups", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def flush(self) -> None:
        """Send the owed notifies now and stop the thread (on close)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and self._pid == os.getpid():
            thread.join(5.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._owed and not self._stopping:
                    self._cond.wait()
                if not self._owed:
                    self._thread = None
                    return
                if not self._stopping:
                    last = max(self._sent.get(queue, 0.0) for queue in self._owed)
                    self._cond.wait(max(0.0, last + self._window - time.monotonic()))
                queues, self._owed = sorted(self._owed), set()
            self._send(queues)

    def _send(self, queues: list[str]) -> None:
        try:
            self._db.run(sql.NOTIFY, (queues,))
        except StorageError:
            return  # the database is away: the pools poll, and LISTEN reconnects
        now = time.monotonic()
        for queue in queues:
            self._sent[queue] = now
