"""Several real processes and threads on one database (part of the contract)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from jobq.job import JobStatus
from jobq.storage.base import Completion, NewJob, Storage
from tests.contract._backends import CORE_BACKENDS, open_storage
from tests.helpers import run_children

pytestmark = pytest.mark.parametrize("spec", CORE_BACKENDS, indirect=True)

T0 = 1_000_000.0


@pytest.mark.slow  # starts processes: the full suite runs it, not --fast
def test_processes_never_claim_one_job_twice(spec: dict[str, Any], storage: Storage) -> None:
    # A busy machine may run the children one after another, so that one claims
    # every job: the round then proves nothing about concurrency and runs again.
    rounds = 0
    while rounds < 3:
        rounds += 1
        ids = storage.enqueue_many([NewJob("t", "[]") for _ in range(2000)], now=T0)
        children = [[json.dumps(spec), "claim", f"proc-{n}", str(T0)] for n in range(3)]
        results = run_children(children)
        claimed = [job_id for result in results for job_id in result["claimed"]]
        assert sorted(claimed) == ids  # each job exactly once, none lost
        if sum(1 for result in results if result["claimed"]) >= 2:
            break
    else:
        raise AssertionError("no concurrency happened in 3 rounds")
    owners = {job.lease_owner for job in storage.list_jobs(limit=5000 * rounds)}
    assert owners <= {"proc-0", "proc-1", "proc-2"}
    stats = storage.stats(now=T0)
    assert stats.queues["default"].counts[JobStatus.COMPLETED] == 2000 * rounds


@pytest.mark.slow  # starts processes: the full suite runs it, not --fast
def test_processes_open_a_fresh_database_at_once(spec: dict[str, Any]) -> None:
    # Nobody has created the schema: the children race to create it.
    if spec["backend"] == "postgres":
        import psycopg

        with psycopg.connect(spec["url"]) as conn:
            assert conn.execute("SELECT to_regclass('jobq_jobs')").fetchone() == (None,)
    elif spec["backend"] == "redis":
        import redis

        with redis.Redis.from_url(spec["url"]) as client:
            assert list(client.scan_iter(match=f"{spec['prefix']}*")) == []
    else:
        assert not Path(spec["path"]).exists()
    results = run_children([[json.dumps(spec), "enqueue", f"job-{n}"] for n in range(4)])
    assert len({result["id"] for result in results}) == 4
    storage = open_storage(spec)
    try:
        assert sorted(job.name for job in storage.list_jobs()) == [f"job-{n}" for n in range(4)]
    finally:
        storage.close()


def test_threads_share_one_storage_without_double_claims(storage: Storage) -> None:
    ids = storage.enqueue_many([NewJob("t", "[]") for _ in range(300)], now=T0)
    claimed: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def work(slot: int) -> None:
        try:
            while jobs := storage.claim(
                ["default"], owner=f"t{slot}", now=T0, lease_seconds=60, limit=2
            ):
                claimed[slot] += [job.id for job in jobs]
                storage.complete_many(
                    [Completion(job.id, job.lease_token or "") for job in jobs], now=T0
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert sorted(job_id for part in claimed for job_id in part) == ids
