"""Run by tests/integration/test_move_jobs.py in a fresh interpreter, to be killed
in the middle of a move:

    python _move_child.py '<source spec json>' '<target spec json>' <batch size>

Prints ``copied`` each time a batch has reached the target (before the source's
copies are cancelled), then goes on until the parent kills it.
"""

from __future__ import annotations

import json
import os
import sys

# Run as a script: make the repository's folder importable, as pytest does.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from jobq.storage.base import NewJob
from jobq.storage.transfer import move_pending_jobs
from tests.contract._backends import open_storage


def main() -> None:
    source = open_storage(json.loads(sys.argv[1]))
    target = open_storage(json.loads(sys.argv[2]))
    enqueue_many = target.enqueue_many

    def enqueue_and_tell(jobs: list[NewJob], *, now: float) -> list[int]:
        ids = enqueue_many(jobs, now=now)
        print("copied", flush=True)
        return ids

    target.enqueue_many = enqueue_and_tell  # type: ignore[method-assign]
    move_pending_jobs(source, target, batch_size=int(sys.argv[3]), now=1_000_001.0)
    print("done", flush=True)


if __name__ == "__main__":
    main()
