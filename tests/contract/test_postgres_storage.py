"""What only the PostgreSQL backend promises: the server's clock, LISTEN/NOTIFY
wake-ups, migrations under an advisory lock, and clear connection errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import jobq
from jobq import DurableQueue, JobStatus
from jobq.storage.base import NewJob, SchemaVersionError, StorageError
from tests.helpers import BOUNDED_WAIT, drop_postgres_schema, postgres_schema_url, wait_for

pytestmark = pytest.mark.postgres
psycopg = pytest.importorskip("psycopg")

from jobq.storage.postgres import PostgresStorage  # noqa: E402


@pytest.fixture
def url() -> Iterator[str]:
    made = postgres_schema_url()
    yield made
    drop_postgres_schema(made)


def server_time(url: str) -> float:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT extract(epoch from clock_timestamp())::float8").fetchone()
    assert row is not None
    return float(row[0])


def test_leases_follow_the_server_clock_whatever_the_hosts_think(url: str) -> None:
    host_a = PostgresStorage(url)  # clock="database" is the default
    host_b = PostgresStorage(url)
    try:
        behind, ahead = time.time() - 3600, time.time() + 3600  # two badly set clocks
        job = host_a.enqueue(NewJob("t", "[]"), now=behind).job
        assert abs(job.created_at - server_time(url)) < 60  # the server's time was stored
        claimed = host_a.claim(["default"], owner="a", now=behind, lease_seconds=30)
        assert [j.id for j in claimed] == [job.id]
        # Host B's clock is an hour ahead: by its own clock A's lease lapsed long ago.
        assert host_b.rescue_expired(now=ahead).total == 0
        assert host_b.claim(["default"], owner="b", now=ahead, lease_seconds=30) == []
        assert host_b.get(job.id).status is JobStatus.PROCESSING  # type: ignore[union-attr]
        token = claimed[0].lease_token
        assert token is not None
        assert host_a.complete(job.id, token, now=behind)
    finally:
        host_a.close()
        host_b.close()


def test_a_job_enqueued_elsewhere_wakes_an_idle_pool_through_notify(url: str) -> None:
    # Polls once a minute: only a notification can start the job quickly.
    workers = DurableQueue(PostgresStorage(url), poll_interval=60)
    other_host = DurableQueue(PostgresStorage(url))
    done = threading.Event()

    @workers.task("ping")
    def ping() -> None:
        done.set()

    other_host.task("ping")(lambda: None)
    # Let the pool go idle: once this process LISTENs (the listener says None), the
    # pool must look for work, find nothing and wait, before the job is sent.
    listening, idle = threading.Event(), threading.Event()
    unsubscribe = workers.storage.subscribe(lambda name: listening.set() if name is None else None)
    storage = workers.storage
    real_claim, real_has_runnable = storage.claim, storage.has_runnable

    def claim(*args: Any, **kwargs: Any) -> list[jobq.Job]:
        heard = listening.is_set()
        jobs = real_claim(*args, **kwargs)
        if heard and not jobs:
            idle.set()
        return jobs

    def has_runnable(*args: Any, **kwargs: Any) -> bool:
        heard = listening.is_set()
        found = real_has_runnable(*args, **kwargs)
        if heard and not found:
            idle.set()
        return found

    storage.claim = claim  # type: ignore[method-assign]
    storage.has_runnable = has_runnable  # type: ignore[method-assign]
    pool = workers.start_workers(concurrency=1)
    try:
        assert idle.wait(BOUNDED_WAIT), "the pool never looked for work after LISTEN"
        sent = time.monotonic()
        other_host.enqueue("ping")
        assert done.wait(BOUNDED_WAIT)
        assert time.monotonic() - sent < 5.0, "woken by polling, not by NOTIFY"
    finally:
        pool.stop()
        unsubscribe()
        workers.close()
        other_host.close()


def test_subscribers_hear_the_queue_name_of_new_jobs(url: str) -> None:
    storage = PostgresStorage(url)
    heard: list[str | None] = []
    got_mail = threading.Event()

    def listen(queue: str | None) -> None:
        heard.append(queue)
        if queue == "mail":
            got_mail.set()

    unsubscribe = storage.subscribe(listen)
    try:
        sender = PostgresStorage(url)
        try:
            # The listener says None once it listens.
            wait_for(lambda: None in heard, "the listener listens", BOUNDED_WAIT, interval=0.01)
            sender.enqueue(NewJob("t", "[]", queue="mail"), now=0.0)
            assert got_mail.wait(BOUNDED_WAIT)
        finally:
            sender.close()
    finally:
        unsubscribe()
        storage.close()
    assert not any(
        t.name == "jobq-postgres-listener" and t.is_alive() for t in threading.enumerate()
    )


def test_a_database_written_by_a_newer_jobq_is_refused(url: str) -> None:
    PostgresStorage(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE jobq_schema SET version = 99")
    with pytest.raises(SchemaVersionError, match="schema version 99"):
        PostgresStorage(url)


def test_an_unreachable_server_is_a_clear_storage_error() -> None:
    with pytest.raises(StorageError, match="cannot connect to PostgreSQL"):
        PostgresStorage("postgresql://nobody@127.0.0.1:1/nothing", connect_timeout=2)


def test_the_password_never_shows_in_the_repr(url: str) -> None:
    storage = PostgresStorage(url)
    storage.url = "postgresql://app:s3cret@127.0.0.1/app"
    try:
        assert "s3cret" not in repr(storage)
    finally:
        storage.close()


def test_durable_queue_opens_a_postgresql_url(url: str) -> None:
    queue = jobq.DurableQueue(url, inline=True)
    try:
        assert isinstance(queue.storage, PostgresStorage)

        @queue.task("double")
        def double(n: int) -> int:
            return 2 * n

        assert double.enqueue(21).decoded_result() == 42
    finally:
        queue.close()


def _change_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM jobq_job_counts").fetchall()[0][0])


def test_stats_fold_the_rows_of_count_changes(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from jobq.storage.postgres import sql as _postgres_sql

    monkeypatch.setattr(_postgres_sql, "FOLD_AFTER_ROWS", 20)
    with PostgresStorage(url, clock="caller") as storage:
        for n in range(60):
            storage.enqueue(NewJob("t", "[]", queue=f"q{n % 3}"), now=1000.0)
        assert _change_rows(url) >= 60  # one row per statement and queue until folded
        first = storage.stats(now=1000.0)
        assert _change_rows(url) == 3
        assert {q: s.counts[JobStatus.PENDING] for q, s in first.queues.items()} == {
            "q0": 20,
            "q1": 20,
            "q2": 20,
        }
        assert storage.stats(now=1000.0) == first


def test_folding_while_writers_write_loses_no_change(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobq.storage.postgres import sql as _postgres_sql

    monkeypatch.setattr(_postgres_sql, "FOLD_AFTER_ROWS", 0)
    with PostgresStorage(url, clock="caller", max_connections=8) as storage:
        done = threading.Event()
        errors: list[BaseException] = []

        def write(worker: str) -> None:
            try:
                for _ in range(40):
                    storage.enqueue_many(
                        [NewJob("t", "[]"), NewJob("t", "[]", queue="b")], now=1000.0
                    )
                    for job in storage.claim(
                        ["default", "b"], owner=worker, now=1000.0, lease_seconds=30, limit=2
                    ):
                        storage.complete(job.id, job.lease_token or "", now=1000.0)
            except BaseException as exc:  # reported in the test's thread
                errors.append(exc)

        def fold() -> None:
            while not done.is_set():
                storage.stats(now=1000.0)  # folds whatever it finds (threshold 0)

        writers = [threading.Thread(target=write, args=(f"w{n}",)) for n in range(3)]
        folder = threading.Thread(target=fold)
        folder.start()
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join(BOUNDED_WAIT * 6)
        done.set()
        folder.join(BOUNDED_WAIT)
        assert not errors, errors
        stats = storage.stats(now=1000.0)
        counted = {q: s.counts for q, s in stats.queues.items()}
        truth: dict[str, dict[JobStatus, int]] = {}
        for job in storage.list_jobs(limit=10_000):
            truth.setdefault(job.queue, dict.fromkeys(JobStatus, 0))[job.status] += 1
        assert counted == truth
        assert sum(counted["default"].values()) == 3 * 40
