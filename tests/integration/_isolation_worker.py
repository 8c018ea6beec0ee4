"""A worker process for tests/integration/test_isolation_processes.py:
``python _isolation_worker.py DATABASE READY_FILE``.

Registers ``hang`` (process-isolated: reports its pid and its parent's, the fork
server's, as progress, then sleeps in C code), starts a pool, touches READY_FILE
and waits to be killed (it gives up on its own after 90 s).
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from pathlib import Path

import jobq


def register(queue: jobq.DurableQueue) -> jobq.Task[[], None]:
    @queue.task("hang", isolation="process")
    def hang() -> None:
        jobq.current_job().set_progress({"child": os.getpid(), "server": os.getppid()})
        ctypes.CDLL(None).sleep(120)

    return hang


if __name__ == "__main__":
    queue = jobq.DurableQueue(sys.argv[1], poll_interval=0.01)
    register(queue)
    pool = queue.start_workers(concurrency=2)
    Path(sys.argv[2]).touch()
    time.sleep(90)
    sys.exit(3)
