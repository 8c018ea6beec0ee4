"""What is particular to dependencies on Redis: the keys that hold waiting jobs and
edges go away with the jobs, a waiting job is in no queue set until released, and
the completion of a dependency releases its dependents in the same call."""

from __future__ import annotations

import pytest

from jobq.job import JobStatus
from jobq.storage.base import NewJob
from jobq.storage.bulk import JobFilter
from jobq.storage.redis import RedisStorage
from tests.contract._support import T0, claim_one, token

# The contract suite's storage fixture, on Redis only.
pytestmark = [pytest.mark.redis, pytest.mark.parametrize("spec", ["redis"], indirect=True)]

EDGE_KEYS = ("waiting:", "deps:", "dependents:", "waiters:")


def _keys(storage: RedisStorage, kind: str) -> set[str]:
    client = storage._server.client
    return set(client.scan_iter(match=f"{storage.prefix}{kind}*", count=1000))


def _edge_keys(storage: RedisStorage) -> set[str]:
    return set().union(*(_keys(storage, kind) for kind in EDGE_KEYS))


def test_a_waiting_job_is_in_no_queue_set_until_its_dependency_completes(
    storage: RedisStorage,
) -> None:
    first = storage.enqueue(NewJob("t", "[]"), now=T0).job.id
    later = storage.enqueue(NewJob("t", "[]", depends_on=(first,)), now=T0).job.id
    client, p = storage._server.client, storage.prefix
    assert client.sismember(f"{p}waiting:default", str(later))
    assert client.zscore(f"{p}pending:default", str(later)) is None
    assert client.zcard(f"{p}ready:default") == 1  # the first job only
    job = claim_one(storage, T0)
    # One script run completes the job and releases its dependent.
    assert storage.complete(job.id, token(job), now=T0 + 1)
    assert not client.exists(f"{p}waiting:default")
    assert client.zscore(f"{p}pending:default", str(later)) == T0 + 1
    assert storage.stats(now=T0 + 1).queues["default"].waiting == 0


def test_the_keys_of_a_chain_go_with_its_jobs(storage: RedisStorage) -> None:
    ids = storage.enqueue_chain([NewJob("t", "[]")] * 3, now=T0)
    assert _edge_keys(storage)
    for step, job_id in enumerate(ids):
        job = claim_one(storage, T0 + step)
        assert job.id == job_id
        storage.complete(job.id, token(job), now=T0 + step)
    assert _keys(storage, "waiting:") == set()
    assert _keys(storage, "waiters:") == set()
    assert storage.purge(older_than=T0 + 10, statuses=[JobStatus.COMPLETED]) == 3
    assert _edge_keys(storage) == set()


def test_deleting_a_waiting_job_takes_its_edges_and_its_place_in_the_counts(
    storage: RedisStorage,
) -> None:
    first = storage.enqueue(NewJob("t", "[]"), now=T0).job.id
    waiting = storage.enqueue(NewJob("w", "[]", depends_on=(first,)), now=T0).job.id
    cancelled = storage.enqueue(NewJob("t", "[]", depends_on=(first,)), now=T0).job.id
    assert storage.stats(now=T0).queues["default"].waiting == 2
    storage.request_cancel(cancelled, now=T0 + 1)
    assert storage.stats(now=T0 + 1).queues["default"].waiting == 1
    assert storage.delete_matching(JobFilter(name="w"), now=T0 + 1).changed == 1
    assert storage.dependents_of(first) == [cancelled]
    assert storage.dependencies_of(waiting) == []
    assert storage.stats(now=T0 + 1).queues["default"].waiting == 0
    job = claim_one(storage, T0 + 2)
    assert job.id == first
    storage.complete(first, token(job), now=T0 + 2)
    assert storage.get(cancelled).status is JobStatus.CANCELLED  # type: ignore[union-attr]
    storage.delete_matching(JobFilter(), now=T0 + 3)
    assert _edge_keys(storage) == set()
