"""Fewer NOTIFYs for one-by-one enqueues, and never a wake-up lost.

A ``pg_notify`` in an enqueue's transaction wakes every listening pool; it costs
the enqueue about 30 µs (measured with one idle listener), some 8% of a
one-by-one enqueue. When this process notified the same queue less than
:data:`WINDOW` ago, the pools it woke are still claiming (or about to), so the
enqueue skips its own notify and, once its transaction has committed, owes one.
The next enqueue to that queue after the window notifies in its transaction,
which commits after the owing one's: that pays the debt. If none comes within
another window, a thread of this process sends one NOTIFY for all owed queues,
in a transaction that writes no row (its commit does not wait for the disk).
Every job committed is thus followed within two windows by a notify sent after
its commit, so an idle pool anywhere always hears of it; pools also keep
polling. Pickup of a job enqueued alone (more than a window after the last one)
is unchanged: it notifies in its own transaction. Off by default (:data:`WINDOW`).

Rule: imports this backend's connections and SQL text; knows no other job SQL.
"""

from __future__ import annotations

import os
import threading
import time

from ..base import StorageError
from . import sql
from .connection import Database

WINDOW = 0.0
"""Seconds after a notify of a queue during which this process's enqueues to it
defer theirs. 0: off, every enqueue notifies in its transaction. Measured with a
1 ms window on back-to-back enqueues: the thread's wake-ups cost 4.4 futex calls
and 0.11 extra round trips per enqueue (strace -c), more than the notify saved
(about 30 µs, and only while a pool listens); a window pays only for processes
that enqueue bursts while pools listen."""


class Wakeups:
    """Which queues this process notified when, and the notifies it owes."""

    def __init__(self, db: Database, window: float = WINDOW) -> None:
        self._db = db
        self._window = window
        self._sent: dict[str, float] = {}  # queue -> monotonic time of its last notify
        self._owed: dict[str, float] = {}  # queue -> when its latest unannounced job committed
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._stopping = False

    def may_defer(self, queue: str) -> bool:
        """True if an enqueue to ``queue`` may leave its notify out, provided it
        calls :meth:`owe` after its commit."""
        sent = self._sent.get(queue)
        return sent is not None and time.monotonic() - sent < self._window

    def sent(self, queue: str, began: float) -> None:
        """An enqueue to ``queue`` that began at ``began`` (``time.monotonic()``)
        notified in its transaction, just committed. It announced the jobs owed
        before it began too: they were committed before its own commit."""
        self._sent[queue] = time.monotonic()
        with self._cond:
            if self._owed.get(queue, began) < began:
                del self._owed[queue]

    def owe(self, queue: str) -> None:
        """A job of ``queue`` committed without a notify: one must follow."""
        with self._cond:
            if self._pid != os.getpid():  # forked: the parent's thread is not here
                self._pid, self._thread, self._owed = os.getpid(), None, {}
            idle = not self._owed  # else the thread waits for a deadline already
            self._owed[queue] = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="jobq-postgres-wakeups", daemon=True
                )
                self._thread.start()
            elif idle:
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
                # A window to end, and one more for an enqueue to pay the debt.
                while self._owed and not self._stopping:
                    last = max(self._sent.get(queue, 0.0) for queue in self._owed)
                    left = last + 2 * self._window - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if not self._owed and self._stopping:
                    self._thread = None
                    return
                queues, self._owed = sorted(self._owed), {}
            if queues:
                self._send(queues)

    def _send(self, queues: list[str]) -> None:
        try:
            self._db.run(sql.NOTIFY_ONLY, (queues,))
        except StorageError:
            return  # the database is away: the pools poll, and LISTEN reconnects
        now = time.monotonic()
        for queue in queues:
            self._sent[queue] = now
