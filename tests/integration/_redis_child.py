"""A real process for tests/integration/test_redis_server_kill.py:
``python _redis_child.py '<json>'``.

The JSON names a ``mode``, the Redis ``url`` and key ``prefix``, and a shared folder
``dir``; the child talks to the test through files only, each line written in one
``write`` to an ``O_APPEND`` file (whole lines, whatever kills whom):

- ``enqueue``: enqueue ``count`` ``work`` jobs one by one (payload: their number),
  appending ``ok <n> <id>`` to ``enqueued.txt`` once an enqueue returned an id and
  ``error <n>`` when it raised (the server was down: the same job is tried again
  until it is accepted, for at most ``HARD_LIMIT`` seconds).
- ``workers``: a pool of ``concurrency`` threads until the file ``stop`` appears;
  each ``work`` job appends ``start``/``done <id> <pid> <attempt> <time>`` to
  ``ledger-<pid>.txt``, and each error jobq logs (a failed call to the server) a
  line to ``errors-<pid>.txt``.

Both open the storage with ``durability="refuse"``: the server must be one that
keeps every accepted job (``appendonly yes``, ``appendfsync always``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jobq
from jobq.storage.redis import RedisStorage

HARD_LIMIT = 90.0
"""Seconds after which a child gives up on its own (the test's timeout is 120 s)."""


def _append(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _open(config: dict[str, Any]) -> jobq.DurableQueue:
    # The server may be down at this very moment: try again until it answers.
    deadline = time.monotonic() + HARD_LIMIT
    while True:
        try:
            storage = RedisStorage(config["url"], prefix=config["prefix"], durability="refuse")
            break
        except jobq.StorageError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    queue = jobq.DurableQueue(
        storage, lease_seconds=float(config.get("lease", 2.0)), poll_interval=0.01
    )
    folder = Path(config["dir"])
    pause = float(config.get("job_sleep", 0.0))
    lock = threading.Lock()

    @queue.task("work", max_attempts=1000)
    def work(n: int) -> int:
        job = jobq.current_job()
        ledger = folder / f"ledger-{os.getpid()}.txt"
        with lock:
            _append(ledger, f"start {job.id} {os.getpid()} {job.attempt} {time.time()!r}\n")
        time.sleep(pause)
        with lock:
            _append(ledger, f"done {job.id} {os.getpid()} {job.attempt} {time.time()!r}\n")
        return n

    return queue


def enqueue(config: dict[str, Any]) -> int:
    folder = Path(config["dir"])
    queue = _open(config)
    task = queue.get_task("work")
    deadline = time.monotonic() + HARD_LIMIT
    for n in range(int(config["count"])):
        while True:
            try:
                job = task.enqueue(n)
            except jobq.StorageError:
                _append(folder / "enqueued.txt", f"error {n}\n")
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)  # the server is down: try again soon
                continue
            _append(folder / "enqueued.txt", f"ok {n} {job.id}\n")
            break
    queue.close()
    return 0


class _ErrorFile(logging.Handler):
    """Appends every record jobq logs at ERROR to a file at once."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.ERROR)
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        _append(self.path, json.dumps(record.getMessage()) + "\n")


def workers(config: dict[str, Any]) -> int:
    folder = Path(config["dir"])
    logging.getLogger("jobq").addHandler(_ErrorFile(folder / f"errors-{os.getpid()}.txt"))
    queue = _open(config)
    pool = queue.start_workers(concurrency=int(config.get("concurrency", 4)))
    (folder / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + HARD_LIMIT
    while not (folder / "stop").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    finished = pool.stop(timeout=10.0)
    queue.close()
    return 0 if finished else 4


MODES = {"enqueue": enqueue, "workers": workers}


def main() -> int:
    config = json.loads(sys.argv[1])
    return MODES[config["mode"]](config)


if __name__ == "__main__":
    sys.exit(main())
