"""A real process for tests/integration/test_chains.py:
``python _chain_child.py <mode> <database> <folder>``; ``<database>`` is a SQLite
file, or a Redis URL with ``?prefix=...`` in its query (see :func:`open_location`).

- ``worker``: start a pool (one thread) on the chain tasks of :func:`chain_queue`,
  touch ``ready``, then wait (at most 60 s; the test kills it with SIGKILL).
- ``complete-first``: claim the one runnable job of queue ``first`` and complete it.

Every wait here is bounded; any uncaught exception exits non-zero.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

# Run as a script: make the repository's folder importable, as pytest does.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jobq
from jobq.storage import SQLiteStorage
from jobq.storage.base import Storage

HANG_SECONDS = 60.0
"""How long ``hang_once`` hangs the first time: the test kills its process long before."""


def open_location(database: str) -> str | Storage:
    """The path itself, or for a Redis URL (its query gives the key prefix and
    ``durability=ignore``) a ``RedisStorage`` whose times are the callers' (so a test
    can pass a lease's expiry as ``now``)."""
    if not database.startswith("redis://"):
        return database
    from jobq.storage.redis import RedisStorage

    return RedisStorage(database, clock="caller")


def chain_queue(database: str, folder: Path, **options: object) -> jobq.DurableQueue:
    """A queue with the tasks the chain tests run: ``inc(x) -> x + 1``, and
    ``hang_once(x) -> x + 1`` that hangs the first time it runs (touching ``hung``)."""
    queue = jobq.DurableQueue(open_location(database), **options)  # type: ignore[arg-type]

    @queue.task("inc")
    def inc(x: int) -> int:
        return x + 1

    @queue.task("hang_once")
    def hang_once(x: int) -> int:
        marker = folder / "hung"
        if not marker.exists():
            marker.touch()
            time.sleep(HANG_SECONDS)
        return x + 1

    return queue


def main(mode: str, database: str, folder: Path) -> None:
    if mode == "worker":
        queue = chain_queue(database, folder, poll_interval=0.05)
        queue.start_workers(concurrency=1)
        (folder / "ready").touch()
        time.sleep(HANG_SECONDS)
        raise SystemExit("not killed in time")
    if mode == "complete-first":
        storage = SQLiteStorage(database)
        (job,) = storage.claim(["first"], owner="child", now=time.time(), lease_seconds=60)
        assert job.lease_token is not None
        assert storage.complete(job.id, job.lease_token, now=time.time(), result="1")
        storage.close()
        return
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
