"""A real process for tests/integration/test_sqlite_wakeup.py:
``python _wakeup_child.py <mode> <database> <folder>``.

- ``enqueue``: enqueue one ``record`` job on queue ``mail`` and exit.
- ``subscribe``: subscribe to the storage's wake-ups, touch ``subscribed``, then
  wait (at most 60 s; the test kills it with SIGKILL).
- ``pool``: start a worker pool that polls only every 30 s, recording each wake-up
  the channel delivers in ``woken.txt``; touch ``ready``; run until ``stop``
  appears. The ``record`` job writes ``ran.txt``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jobq
from jobq.storage import SQLiteStorage

LONG_POLL = 30.0
"""Seconds between an idle pool's looks for jobs: far longer than any wait of the tests."""


def wait_for_file(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def run_pool(database: str, folder: Path) -> None:
    queue = jobq.DurableQueue(database, poll_interval=LONG_POLL)

    @queue.task("record", queue="mail")
    def record() -> None:
        (folder / "ran.txt").write_text(f"{time.time():.6f}\n")

    storage = queue.storage
    subscribe = storage.subscribe  # type: ignore[attr-defined]

    def recording_subscribe(callback):  # type: ignore[no-untyped-def]
        def woken(queue_name: str | None) -> None:
            with open(folder / "woken.txt", "a") as file:
                file.write(f"{queue_name} {time.time():.6f}\n")
            callback(queue_name)

        return subscribe(woken)

    storage.subscribe = recording_subscribe  # type: ignore[attr-defined]
    pool = queue.start_workers(concurrency=1)
    (folder / "ready").touch()
    wait_for_file(folder / "stop")
    pool.stop()
    queue.close()


def main(mode: str, database: str, folder: Path) -> None:
    if mode == "enqueue":
        queue = jobq.DurableQueue(database)

        @queue.task("record", queue="mail")
        def record() -> None: ...

        record.enqueue()
        queue.close()
    elif mode == "subscribe":
        storage = SQLiteStorage(database)
        storage.subscribe(lambda queue_name: None)
        (folder / "subscribed").touch()
        time.sleep(60)
    elif mode == "pool":
        run_pool(database, folder)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
