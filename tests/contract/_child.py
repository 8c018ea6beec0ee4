"""Run by the multi-process storage tests in a fresh interpreter.

    python _child.py '<spec json>' claim <owner> <now>
    python _child.py '<spec json>' enqueue <name>
    python _child.py '<spec json>' enqueue-and-hang <name>
    python _child.py '<spec json>' enqueue-unique <task> <key> <times>
    python _child.py '<spec json>' enqueue-replace <task> <key> <child> <times>
    python _child.py '<spec json>' complete '<[[id, token], ...] json>'

The child prints ``ready`` (a claimer once its database is open), waits for a line
on stdin (so the parent can release every child at once), does its work and
prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys

# Run as a script: make the repository's folder importable, as pytest does.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from jobq.storage.base import Completion, NewJob
from tests.contract._backends import open_storage


def main() -> None:
    spec, mode, *args = sys.argv[1:]
    opened = None
    if mode in ("claim", "complete"):
        # Claimers open their database first: on a busy machine opening takes longer
        # than claiming every job, and would decide alone which child claims them.
        opened = open_storage(json.loads(spec))
        opened.has_runnable(["default"], now=0.0)
    print("ready", flush=True)
    sys.stdin.readline()
    if mode in ("enqueue", "enqueue-and-hang"):
        # Opening races the other children on a fresh file: schema creation.
        storage = open_storage(json.loads(spec))
        enqueued = storage.enqueue(NewJob(args[0], "[]"), now=1000.0)
        print(json.dumps({"id": enqueued.job.id}), flush=True)
        if mode == "enqueue-and-hang":
            sys.stdin.readline()  # until the parent kills us
    elif mode == "enqueue-unique":
        storage = open_storage(json.loads(spec))
        task, key, times = args[0], args[1], int(args[2])
        ids = []
        for n in range(times):  # single and bulk enqueues race the other children
            if n % 2:
                ids += storage.enqueue_many([NewJob(task, "[]", unique_key=key)], now=1000.0)
            else:
                ids.append(storage.enqueue(NewJob(task, "[]", unique_key=key), now=1000.0).job.id)
        print(json.dumps({"ids": ids}), flush=True)
    elif mode == "enqueue-replace":
        storage = open_storage(json.loads(spec))
        task, key, child, times = args[0], args[1], int(args[2]), int(args[3])
        own = True
        for n in range(times):  # payload [child, n], run at 1_001_000 + n + child
            job = NewJob(
                task,
                json.dumps([child, n]),
                run_at=1_001_000.0 + n + child,
                unique_key=key,
                on_duplicate="replace",
            )
            if n % 2:
                storage.enqueue_many([job], now=1_000_000.0)
            else:
                own = own and storage.enqueue(job, now=1_000_000.0).job.payload == job.payload
        print(json.dumps({"own": own}), flush=True)
    elif mode == "claim":
        assert opened is not None
        storage = opened
        owner, now = args[0], float(args[1])
        claimed: list[int] = []
        batch = 1
        while jobs := storage.claim(
            ["default"], owner=owner, now=now, lease_seconds=600, limit=batch
        ):
            claimed += [job.id for job in jobs]
            done = storage.complete_many(
                [Completion(job.id, job.lease_token or "") for job in jobs], now=now
            )
            assert all(done), done
            batch = batch % 4 + 1  # mix single and batched claims
        print(json.dumps({"claimed": claimed}), flush=True)
    elif mode == "complete":
        assert opened is not None
        held = json.loads(args[0])
        done: list[bool] = []
        for start in range(0, len(held), 4):  # single and grouped completions, mixed
            chunk = held[start : start + 4]
            if start % 8:
                done += opened.complete_many([Completion(i, t) for i, t in chunk], now=1001.0)
            else:
                done += [opened.complete(i, t, now=1001.0) for i, t in chunk]
        print(json.dumps({"completed": sum(done)}), flush=True)
        storage = opened
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    storage.close()


if __name__ == "__main__":
    main()
