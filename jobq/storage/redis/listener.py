"""Wake-ups across hosts: one pub/sub connection per process, subscribed to the
channel ``<prefix>wake`` on which the scripts that make jobs runnable publish the
queue's name, shared by the callbacks that worker pools subscribe, on a thread of
its own.

Each time the server confirms the subscription (on connecting, and on
reconnecting, whether after an error here or by redis-py itself) the callbacks
get None: messages published while nobody listened were lost, so the pools look
for work in every queue. Polling remains the fallback.

A connection that cannot be made or is lost is logged (``jobq.storage``, a warning
at the first failure of a run of them) and retried with a growing pause, at most 5
s; meanwhile the pools poll. A server whose ACL does not let the user subscribe to
the channel is such a case (``ACL SETUSER <user> &<prefix>wake`` allows it).

Rule: imports this backend's server module (the only one that imports redis) and
the storage contract's errors only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..base import StorageError
from .server import Subscription

CHANNEL = "wake"
"""The channel's name after the key prefix (it is not a key)."""

logger = logging.getLogger("jobq.storage")


class Listener:
    """One subscription per process, shared by the subscribed callbacks.

    :param url: the Redis URL (without jobq's own query parameters).
    :param channel: the full channel name (prefix included).
    :param timeout: seconds to wait for a connection.
    """

    def __init__(self, url: str, channel: str, *, timeout: float) -> None:
        self._url = url
        self._channel = channel
        self._timeout = timeout
        self._callbacks: list[Callable[[str | None], None]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, callback: Callable[[str | None], None]) -> None:
        """Call ``callback`` for each wake-up from now on (starts the thread)."""
        with self._lock:
            self._callbacks.append(callback)
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(
                    target=self._listen, name="jobq-redis-listener", daemon=True
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
                subscription = Subscription(self._url, self._channel, timeout=self._timeout)
            except StorageError as exc:
                failures = self._failed(failures, exc)
                continue
            try:
                while not self._stopping.is_set():
                    message = subscription.get(0.2)
                    if message is None:
                        continue
                    kind, data = message
                    if kind == "message":
                        self._deliver(data)
                    elif kind == "subscribe":
                        failures = 0
                        self._deliver(None)  # anything made runnable while not listening
            except StorageError as exc:
                failures = self._failed(failures, exc)
            finally:
                subscription.close()

    def _failed(self, failures: int, error: StorageError) -> int:
        if failures == 0:
            logger.warning(
                "jobq: cannot listen for wake-ups on the Redis channel %r (%s); retrying, "
                "worker pools poll meanwhile",
                self._channel,
                error,
            )
        failures += 1
        self._stopping.wait(min(5.0, 0.1 * 2**failures))
        return failures

    def _deliver(self, queue: str | None) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(queue)
            except Exception:  # one bad subscriber must not silence the others
                logger.exception("jobq: a wake-up callback failed")
