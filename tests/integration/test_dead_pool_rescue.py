"""A worker process killed with SIGKILL while it holds jobs: another process on the
same host sees its pid gone and releases those jobs at once, without waiting for
their leases (300 s here, so that only the registry's check can explain it)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from jobq import DurableQueue, JobStatus
from jobq.storage.workers import WorkerRegistry
from tests.helpers import open_location, started_process, three_backends, wait_for
from tests.integration._worker_process import read_ledgers, register_tasks

HELPER = str(Path(__file__).with_name("_worker_process.py"))
LEASE = 300.0
DEADLINE = 30.0  # real seconds a step may take: far below the lease


@three_backends
def test_the_jobs_of_a_killed_worker_process_are_released_without_waiting_for_the_lease(
    tmp_path: Path, database: str
) -> None:
    config = {"dir": str(tmp_path), "db": database, "lease": LEASE, "poll": 0.01}
    queue = DurableQueue(open_location(database), lease_seconds=LEASE, poll_interval=0.01)
    register_tasks(queue, config)  # "hang" runs until its process is killed there
    hang = queue.get_task("hang")
    jobs = [hang.enqueue().id for _ in range(3)]
    child_config = {**config, "mode": "workers", "name": "doomed", "block": True}
    args = [sys.executable, HELPER, json.dumps(child_config)]
    try:
        with started_process(args, log=tmp_path / "doomed.log") as child:

            def held_by_child() -> bool:
                assert child.poll() is None, (tmp_path / "doomed.log").read_text()
                return all(
                    (job := queue.get(job_id)).status is JobStatus.PROCESSING
                    and str(child.pid) in (job.lease_owner or "")
                    for job_id in jobs
                )

            # Two jobs run (their threads block), the third waits, claimed ahead.
            wait_for(held_by_child, "the child holds every job")
            wait_for(
                lambda: sum(e[0] == "start" for e in read_ledgers(tmp_path)) == 2,
                "two jobs started in the child",
            )
            # The surviving pool: registered before the kill, so its periodic look
            # (not the one at its start) finds the dead pool.
            pool = queue.start_workers(concurrency=3, name="survivor")
            wait_for(lambda: len(queue.workers()) == 2, "both pools registered")
            os.kill(child.pid, signal.SIGKILL)
            child.wait(DEADLINE)
            wait_for(
                lambda: all(queue.get(job_id).status is JobStatus.COMPLETED for job_id in jobs),
                "the killed process's jobs completed elsewhere",
                DEADLINE,
                interval=0.05,
            )
            assert pool.stop(timeout=DEADLINE)
        for job_id in jobs:
            job = queue.get(job_id)
            assert job.attempts == 2  # the killed attempt counted
        registry = queue.storage
        assert isinstance(registry, WorkerRegistry)
        # The dead pool's row went with its jobs (the survivor unregistered on stop).
        assert registry.live_workers(now=queue.clock.now(), max_age=1e6) == []
    finally:
        queue.close()
