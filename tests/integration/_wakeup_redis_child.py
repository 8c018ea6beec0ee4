"""A real process for the Redis wake-up tests:
``python _wakeup_redis_child.py enqueue <url> <queue>``: enqueue one ``record`` job
on ``queue`` of the Redis storage at ``url`` (a redis:// URL with jobq's options)
and exit."""

from __future__ import annotations

import sys

import jobq


def main(mode: str, url: str, queue_name: str) -> None:
    if mode != "enqueue":
        raise SystemExit(f"unknown mode {mode!r}")
    queue = jobq.DurableQueue(url)

    @queue.task("record", queue=queue_name)
    def record() -> None: ...

    record.enqueue()
    queue.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
