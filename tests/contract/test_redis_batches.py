"""What is particular to batches on Redis: the keys a batch uses are gone once it is
purged, the callback's summary carries ``meta`` exactly as given, and a dead
pool's jobs released by the worker registry count in their batch."""

from __future__ import annotations

import json

import pytest

from jobq.storage.base import Completion, NewJob
from jobq.storage.batches import NewBatch
from jobq.storage.redis import RedisStorage
from jobq.storage.workers import NewWorker
from tests.contract._support import T0, token

# The contract suite's storage fixture, on Redis only.
pytestmark = [pytest.mark.redis, pytest.mark.parametrize("spec", ["redis"], indirect=True)]


def _keys(storage: RedisStorage) -> set[str]:
    client = storage._server.client
    return {key[len(storage.prefix) :] for key in client.scan_iter(match=f"{storage.prefix}*")}


def test_a_purged_batch_leaves_no_key_behind(storage: RedisStorage) -> None:
    state = storage.create_batch(NewBatch(on_complete="report"), now=T0)
    storage.enqueue_payloads_in_batch(state.id, NewJob("t", ""), ["[1]", "[2]"], now=T0)
    storage.seal_batch(state.id, now=T0)
    jobs = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=10)
    storage.complete_many([Completion(job.id, token(job)) for job in jobs], now=T0 + 1)
    (callback,) = storage.claim(["default"], owner="w", now=T0 + 2, lease_seconds=30)
    assert storage.complete(callback.id, token(callback), now=T0 + 3)
    assert {f"batch:{state.id}", f"batch_jobs:{state.id}", "batches"} <= _keys(storage)
    assert storage.purge(older_than=T0 + 100) == 3
    assert storage.batch(state.id) is None
    assert not {key for key in _keys(storage) if key.startswith("batch")} - {"batch_seq"}


def test_the_summary_carries_meta_exactly(storage: RedisStorage) -> None:
    meta = {"name": "caf\u00e9 \u2603", "ratio": 0.1, "big": 2**62, "nested": {"a": [1, None]}}
    state = storage.create_batch(
        NewBatch(on_complete="report", meta=json.dumps(meta, ensure_ascii=False)), now=T0
    )
    sealed = storage.seal_batch(state.id, now=T0)
    (callback_id,) = sealed.callback_job_ids
    callback = storage.get(callback_id)
    assert callback is not None
    assert json.loads(callback.payload) == {
        "args": [
            {
                "id": state.id,
                "event": "complete",
                "total": 0,
                "completed": 0,
                "failed": 0,
                "cancelled": 0,
                "meta": meta,
            }
        ],
        "kwargs": {},
    }


def test_the_jobs_of_a_dead_pool_count_in_their_batch(storage: RedisStorage) -> None:
    state = storage.create_batch(NewBatch(on_complete="report"), now=T0)
    once = NewJob("t", "", max_attempts=1)
    storage.enqueue_payloads_in_batch(state.id, once, ["[1]", "[2]"], now=T0)
    storage.seal_batch(state.id, now=T0)
    pool = NewWorker("h:1:w", "h", 1, "w", ("default",), 2, 30.0)
    storage.register_worker(pool, now=T0)
    jobs = storage.claim(["default"], owner=pool.owner, now=T0, lease_seconds=30, limit=10)
    assert storage.complete(jobs[0].id, token(jobs[0]), now=T0 + 1)
    released = storage.release_owner(pool.owner, started_at=T0, now=T0 + 2)
    assert released.failed == (jobs[1].id,)
    done = storage.batch(state.id)
    assert done is not None
    assert (done.completed, done.failed, done.finished_at) == (1, 1, T0 + 2)
    assert len(done.callback_job_ids) == 1
