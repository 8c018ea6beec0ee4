"""Wake-ups across hosts: one LISTEN connection per process, shared by the
callbacks that worker pools subscribe, on a thread of its own.

Rule: imports psycopg, the shared listening thread and this backend's SQL text
(the channel name) only.
"""

from __future__ import annotations

import psycopg

from ..listening import ListenerThread
from . import sql


class Listener(ListenerThread):
    """One LISTEN connection per process, shared by the subscribed callbacks."""

    thread_name = "jobq-postgres-listener"

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url

    def listen(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {sql.CHANNEL}")
                    self.deliver(None)  # anything enqueued while not listening
                    failures = 0
                    while not self._stopping.is_set():
                        for notice in conn.notifies(timeout=0.2):
                            self.deliver(notice.payload)
            except psycopg.Error:
                failures += 1
                self._stopping.wait(min(5.0, 0.1 * 2**failures))  # the pools keep polling
