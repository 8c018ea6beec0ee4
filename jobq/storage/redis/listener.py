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

Rule: imports this backend's server module (the only one that imports redis), the
shared listening thread and the storage contract's errors only.
"""

from __future__ import annotations

import logging

from ..base import StorageError
from ..listening import ListenerThread
from .server import Subscription

CHANNEL = "wake"
"""The channel's name after the key prefix (it is not a key)."""

logger = logging.getLogger("jobq.storage")


class Listener(ListenerThread):
    """One subscription per process, shared by the subscribed callbacks.

    :param url: the Redis URL (without jobq's own query parameters).
    :param channel: the full channel name (prefix included).
    :param timeout: seconds to wait for a connection.
    """

    thread_name = "jobq-redis-listener"

    def __init__(self, url: str, channel: str, *, timeout: float) -> None:
        super().__init__()
        self._url = url
        self._channel = channel
        self._timeout = timeout

    def listen(self) -> None:
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
                        self.deliver(data)
                    elif kind == "subscribe":
                        failures = 0
                        self.deliver(None)  # anything made runnable while not listening
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
