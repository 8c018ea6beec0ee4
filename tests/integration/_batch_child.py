"""A real process for tests/integration/test_batch_processes.py:
``python _batch_child.py '<json>'``. The JSON's ``db`` is a SQLite path, a
PostgreSQL URL, or a Redis URL with ``#`` and the key prefix after it; ``mode``
is one of:

- ``finish``: claim ``count`` jobs of the batch's queue as owner ``name``, print
  ``ready``, wait for a line on stdin (the test releases every child at once),
  then end them as fast as it can: each job whose argument is a multiple of
  ``fail_every`` fails, the others complete (with ``all_at_once``, every job
  completes in one ``complete_many``, in descending id order with ``reverse``).
  Prints the ids it ended as JSON.
- ``work``: run a worker pool (lease ``lease`` seconds) until the file ``stop``
  appears in ``dir``. ``send`` jobs take a few milliseconds and fail for good for
  multiples of ``fail_every``; each ``report`` run appends its summary to
  ``reports-<pid>.jsonl`` in ``dir``.

- ``listen``: subscribe to the storage's news of runnable jobs (NOTIFY on
  PostgreSQL, the wake-up channel on SQLite), print ``ready``, and print
  ``heard <queue>`` for the first news of the queue ``queue`` (or of any queue).

Every wait is bounded by :data:`HARD_LIMIT`; an uncaught exception exits non-zero.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import jobq
from jobq.storage.base import Completion, JobError

HARD_LIMIT = 90.0


def _queue(config: dict[str, Any], **options: Any) -> jobq.DurableQueue:
    db = config["db"]
    if db.startswith("redis://"):
        from jobq.storage.redis import RedisStorage

        url, _, prefix = db.partition("#")
        storage = RedisStorage(url, prefix=prefix, durability="ignore")
        return jobq.DurableQueue(storage, **options)
    if db.startswith("postgresql://"):
        from jobq.storage.postgres import PostgresStorage

        return jobq.DurableQueue(PostgresStorage(db), **options)
    return jobq.DurableQueue(db, **options)


def finish(config: dict[str, Any]) -> None:
    queue = _queue(config)
    storage = queue.storage
    now = queue.clock.now()
    jobs = storage.claim(
        ["default"], owner=config["name"], now=now, lease_seconds=60, limit=config["count"]
    )
    print("ready", flush=True)
    sys.stdin.readline()
    fail_every = config["fail_every"]
    ended = []
    if config.get("all_at_once"):
        ordered = sorted(jobs, key=lambda job: job.id, reverse=bool(config.get("reverse")))
        done = storage.complete_many(
            [Completion(job.id, job.lease_token or "") for job in ordered], now=queue.clock.now()
        )
        assert all(done), done
        print(json.dumps([job.id for job in ordered]), flush=True)
        queue.close()
        return
    for job in jobs:
        assert job.lease_token is not None
        payload = job.decoded_payload()
        n = payload[0] if isinstance(payload, list) else payload["args"][0]
        if n % fail_every == 0:
            storage.fail(job.id, job.lease_token, JobError("Bounce", "no"), now=queue.clock.now())
        elif config.get("grouped"):
            storage.complete_many([Completion(job.id, job.lease_token)], now=queue.clock.now())
        else:
            storage.complete(job.id, job.lease_token, now=queue.clock.now())
        ended.append(job.id)
    print(json.dumps(ended), flush=True)
    queue.close()


def work(config: dict[str, Any]) -> None:
    folder = Path(config["dir"])
    queue = _queue(config, lease_seconds=config["lease"], poll_interval=0.02)
    fail_every = config["fail_every"]
    reports = folder / f"reports-{os.getpid()}.jsonl"

    @queue.task("send", max_attempts=20)
    def send(n: int) -> int:
        threading.Event().wait(0.01)  # the work itself
        if n % fail_every == 0:
            raise jobq.Fail(f"bounced {n}")
        return n

    @queue.task("report", max_attempts=20)
    def report(batch: jobq.BatchSummary) -> None:
        with open(reports, "a", encoding="utf-8") as file:
            file.write(json.dumps(batch) + "\n")

    pool = queue.start_workers(concurrency=4)
    stop = threading.Event()
    waited = 0.0
    while not (folder / "stop").exists() and waited < HARD_LIMIT:
        stop.wait(0.02)
        waited += 0.02
    pool.stop(timeout=10)
    queue.close()


def listen(config: dict[str, Any]) -> None:
    queue = _queue(config)
    heard = threading.Event()
    names: list[str | None] = []

    def told(queue_name: str | None) -> None:
        if queue_name in (config["queue"], None):
            names.append(queue_name)
            heard.set()

    unsubscribe = queue.storage.subscribe(told)  # type: ignore[attr-defined]
    print("ready", flush=True)
    heard.wait(HARD_LIMIT)
    print(f"heard {names[0] if names else 'nothing'}", flush=True)
    unsubscribe()
    queue.close()


if __name__ == "__main__":
    settings = json.loads(sys.argv[1])
    {"finish": finish, "work": work, "listen": listen}[settings["mode"]](settings)
