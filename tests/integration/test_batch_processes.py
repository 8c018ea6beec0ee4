"""Batches across real processes, on each backend (Redis included): four processes
ending the last jobs of a batch at the same moment enqueue its callback once, and
worker processes killed with SIGKILL mid-batch still leave exactly one callback
with the right counts.

Children are tests/integration/_batch_child.py, each in a session of its own;
every wait has a deadline and every child is killed and reaped at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jobq
from jobq import DurableQueue, JobStatus
from jobq.storage.base import Notifier
from tests.helpers import (
    drop_postgres_schema,
    drop_redis_prefix,
    eventually,
    postgres_schema_url,
    redis_test_prefix,
    require_redis,
)

CHILD = str(Path(__file__).with_name("_batch_child.py"))
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLite path, a PostgreSQL URL (a schema of its own) or a Redis URL with
    ``#`` and a key prefix of its own after it, for the test."""
    if request.param == "sqlite":
        yield str(tmp_path / "jobs.db")
        return
    if request.param == "redis":
        prefix = redis_test_prefix()
        yield f"{require_redis()}#{prefix}"
        drop_redis_prefix(prefix)
        return
    url = postgres_schema_url()
    yield url
    drop_postgres_schema(url)


def _open(db: str) -> DurableQueue:
    if db.startswith("redis://"):
        from jobq.storage.redis import RedisStorage

        url, _, prefix = db.partition("#")
        return DurableQueue(RedisStorage(url, prefix=prefix, durability="ignore"))
    if db.startswith("postgresql://"):
        from jobq.storage.postgres import PostgresStorage

        return DurableQueue(PostgresStorage(db))
    return DurableQueue(db)


@contextlib.contextmanager
def _children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for child in started:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
            child.wait(30)
            for stream in (child.stdin, child.stdout):
                if stream is not None:
                    stream.close()


def _start(config: dict[str, Any], *, pipes: bool = False, log: Path | None = None) -> Any:
    output: Any = subprocess.PIPE if pipes else open(log or os.devnull, "ab")  # noqa: SIM115
    try:
        return subprocess.Popen(
            [sys.executable, CHILD, json.dumps(config)],
            cwd=ROOT,
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stdout=output,
            stderr=None if pipes else subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    finally:
        if not pipes:
            output.close()


def _callback_jobs(queue: DurableQueue) -> list[jobq.Job]:
    return queue.storage.list_jobs(name="report", limit=1000)


def test_four_processes_ending_the_last_jobs_at_once_enqueue_one_callback(db: str) -> None:
    queue = _open(db)
    try:
        queue.task("send")(lambda n: n)
        queue.task("report", queue="reports")(lambda batch: None)
        for round_ in range(6):
            with queue.batch(on_complete="report", on_failure="report") as batch:
                batch.enqueue_many("send", [(n,) for n in range(100)])
            with _children() as children:
                for i in range(4):  # claims one after another: 25 jobs each
                    config = {
                        "mode": "finish",
                        "db": db,
                        "name": f"p{i}",
                        "count": 25,
                        "fail_every": 9,
                        "grouped": round_ % 2 == 1,
                    }
                    child = _start(config, pipes=True)
                    children.append(child)
                    assert child.stdout is not None
                    assert child.stdout.readline().strip() == "ready"
                for child in children:  # released together
                    assert child.stdin is not None
                    child.stdin.write("go\n")
                    child.stdin.flush()
                ended: list[int] = []
                for child in children:
                    assert child.stdout is not None
                    ended += json.loads(child.stdout.readline())
                    assert child.wait(60) == 0
            assert len(set(ended)) == 100
            state = batch.status()
            assert state.finished
            assert (state.completed, state.failed) == (88, 12)
            events = [
                queue.get(job_id).decoded_payload()["args"][0] for job_id in state.callback_job_ids
            ]
            assert [(e["event"], e["completed"], e["failed"]) for e in events] == [
                ("complete", 88, 12),
                ("failure", 88, 12),
            ]
        assert len(_callback_jobs(queue)) == 2 * 6
    finally:
        queue.close()


def test_processes_ending_jobs_of_the_same_two_batches_in_one_transaction(db: str) -> None:
    """Two processes each end jobs of batches A and B in one ``complete_many``, in
    opposite orders: both batches fire once (no deadlock between their locks)."""
    queue = _open(db)
    try:
        queue.task("send")(lambda n: n)
        queue.task("report", queue="reports")(lambda batch: None)
        for _ in range(4):
            first = queue.batch(on_complete="report")
            second = queue.batch(on_complete="report")
            for batch in (first, second, first, second):  # ids: A, B, A, B
                batch.enqueue_many("send", [(n,) for n in range(1, 26)])
            first.seal()
            second.seal()
            with _children() as children:
                for i in range(2):  # 50 jobs each: 25 of A and 25 of B
                    config = {
                        "mode": "finish",
                        "db": db,
                        "name": f"p{i}",
                        "count": 50,
                        "fail_every": 1000,
                        "all_at_once": True,
                        "reverse": i == 1,
                    }
                    child = _start(config, pipes=True)
                    children.append(child)
                    assert child.stdout is not None
                    assert child.stdout.readline().strip() == "ready"
                for child in children:
                    assert child.stdin is not None
                    child.stdin.write("go\n")
                    child.stdin.flush()
                for child in children:
                    assert child.stdout is not None
                    assert len(json.loads(child.stdout.readline())) == 50
                    assert child.wait(60) == 0
            for batch in (first, second):
                state = batch.status()
                assert (state.completed, len(state.callback_job_ids)) == (50, 1)
        assert len(_callback_jobs(queue)) == 8
    finally:
        queue.close()


def test_another_process_is_told_when_the_last_end_enqueues_the_callback(db: str) -> None:
    """The transaction that ends a batch's last job tells the other processes' pools
    (NOTIFY on PostgreSQL, the wake-up channel on SQLite) of the callback's queue."""
    queue = _open(db)
    if not isinstance(queue.storage, Notifier):
        queue.close()
        pytest.skip("this backend has no wake-ups yet: workers find the callback by polling")
    try:
        queue.task("send")(lambda n: n)
        queue.task("report", queue="reports")(lambda batch: None)
        with queue.batch(on_complete="report") as batch:
            batch.enqueue("send", 1)
        (job,) = queue.storage.claim(
            ["default"], owner="w", now=queue.clock.now(), lease_seconds=30
        )
        with _children() as children:
            listener = _start({"mode": "listen", "db": db, "queue": "reports"}, pipes=True)
            children.append(listener)
            assert listener.stdout is not None
            assert listener.stdout.readline().strip() == "ready"
            assert job.lease_token is not None
            queue.storage.complete(job.id, job.lease_token, now=queue.clock.now())
            assert batch.status().finished
            assert listener.stdout.readline().strip() in ("heard reports", "heard None")
            assert listener.wait(30) == 0
    finally:
        queue.close()


@pytest.mark.slow
def test_workers_killed_mid_batch_leave_one_callback_with_the_right_counts(
    db: str, tmp_path: Path
) -> None:
    queue = _open(db)
    total, fail_every = 1200, 7
    config = {"mode": "work", "db": db, "dir": str(tmp_path), "lease": 1.0, "fail_every": 7}
    kills_mid_batch = 0
    try:
        queue.task("send", max_attempts=20)(lambda n: n)
        queue.task("report", max_attempts=20)(lambda batch: None)
        with queue.batch(on_complete="report", meta={"run": "chaos"}) as batch:
            batch.enqueue_many("send", [(n,) for n in range(total)])
        rng = random.Random(19)
        with _children() as children:
            for i in range(3):
                children.append(_start(config, log=tmp_path / f"worker-{i}.log"))
            for k in range(1, 5):
                eventually(lambda k=k: batch.status().ended >= k * total // 6, timeout=60)
                victim = rng.choice([c for c in children if c.poll() is None])
                os.killpg(victim.pid, signal.SIGKILL)
                victim.wait(30)
                kills_mid_batch += batch.status().finished_at is None
                children.append(_start(config, log=tmp_path / f"worker-r{k}.log"))
            eventually(lambda: batch.status().finished, timeout=90)
            callbacks = _callback_jobs(queue)
            eventually(lambda: queue.get(callbacks[0].id).status is JobStatus.COMPLETED, timeout=60)
            (tmp_path / "stop").touch()
            for child in children:
                if child.poll() is None:
                    child.wait(60)
        state = batch.status()
        failed = len(range(0, total, fail_every))
        assert kills_mid_batch >= 3
        sent = queue.storage.list_jobs(name="send", limit=total)
        assert any(job.attempts > 1 for job in sent)  # the killed ones' jobs were rescued
        assert len(_callback_jobs(queue)) == 1
        assert state.callback_job_ids == (callbacks[0].id,)
        assert (state.total, state.completed, state.failed, state.cancelled) == (
            total,
            total - failed,
            failed,
            0,
        )
        reports = [
            json.loads(line)
            for path in tmp_path.glob("reports-*.jsonl")
            for line in path.read_text().splitlines()
        ]
        assert reports
        assert all(r == reports[0] for r in reports)
        assert reports[0] == {
            "id": batch.id,
            "event": "complete",
            "total": total,
            "completed": total - failed,
            "failed": failed,
            "cancelled": 0,
            "meta": {"run": "chaos"},
        }
    finally:
        queue.close()
