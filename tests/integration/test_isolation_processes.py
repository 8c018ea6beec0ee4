"""A worker process killed with SIGKILL while its isolated tasks run leaves no
child process behind: the fork server sees its socket close, kills the children
and exits; the children die with it (PR_SET_PDEATHSIG on Linux)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from jobq import DurableQueue, JobStatus
from tests.helpers import both_backends, started_process, wait_for
from tests.integration._isolation_worker import register
from tests.integration.test_isolation import gone

HELPER = str(Path(__file__).with_name("_isolation_worker.py"))


@both_backends
def test_a_worker_killed_with_sigkill_leaves_no_child_behind(tmp_path: Path, database: str) -> None:
    queue = DurableQueue(database)
    try:
        hang = register(queue)
        jobs = [hang.enqueue().id for _ in range(2)]
        ready = tmp_path / "ready"
        args = [sys.executable, HELPER, database, str(ready)]
        with started_process(args, log=tmp_path / "worker.log") as worker:

            def both_started() -> bool:
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                return all(queue.get(job_id).progress is not None for job_id in jobs)

            wait_for(both_started, "both tasks started in their children")
            pids = [queue.get(job_id).decoded_progress() for job_id in jobs]
            children = [p["child"] for p in pids]
            [server] = {p["server"] for p in pids}
            assert server != worker.pid
            assert worker.pid not in children
            assert not any(gone(pid) for pid in [*children, server])
            assert all(queue.get(job_id).status is JobStatus.PROCESSING for job_id in jobs)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(30)
            wait_for(
                lambda: all(gone(pid) for pid in [*children, server]),
                "the fork server and the children ended",
                interval=0.02,
            )
    finally:
        queue.close()
