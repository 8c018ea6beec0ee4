"""Enqueue in the app's own transaction, with real SQLAlchemy sessions and
connections and real worker pools, on SQLite (the app's tables in the queue's
file) and PostgreSQL (in the queue's schema).

Absence is never proven by waiting: while the app's transaction is open, the
tests ask the database from other connections (``has_runnable``, a claim,
``get``) and the pool's own record of what it ran; after the commit they wait
(bounded) for the job to run, then check that it ran once and saw the app's row.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, scoped_session, sessionmaker

import jobq
from jobq import DurableQueue, signals
from jobq.errors import ConfigurationError
from tests.helpers import ROOT, both_backends, eventually, wait_for

FAR = 4e9  # a `now` after any job's run_at


def engine_url(database: str) -> str:
    """SQLAlchemy's URL for the test database: the same file, or psycopg 3 on the schema."""
    if database.startswith("postgresql://"):
        return database.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"sqlite:///{database}"


class World:
    """A queue and an app engine on one database, a users table, and a task that
    records each run and whether it found its user's row."""

    def __init__(self, database: str) -> None:
        # SQLAlchemy uses the sqlite3 module: the queue must too (one SQLite library).
        self.queue = DurableQueue(database, driver="sqlite3")
        self.engine: Engine = create_engine(engine_url(database))
        with self.engine.begin() as conn:
            key = "SERIAL" if self.postgres else "INTEGER"
            conn.execute(text(f"CREATE TABLE users (id {key} PRIMARY KEY, name TEXT)"))
        self.ran: list[tuple[int, str | None]] = []
        self.ran_event = threading.Event()
        world = self

        @self.queue.task("welcome")
        def welcome(user_id: int) -> None:
            with world.engine.connect() as conn:
                found = conn.execute(
                    text("SELECT name FROM users WHERE id = :id"), {"id": user_id}
                ).scalar()
            world.ran.append((user_id, found))
            world.ran_event.set()

        self.welcome = welcome

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def add_user(self, session: Session, name: str) -> int:
        row = session.execute(
            text("INSERT INTO users (name) VALUES (:name) RETURNING id"), {"name": name}
        )
        return int(row.scalar_one())

    def users(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(conn.execute(text("SELECT name FROM users")).scalars())

    def close(self) -> None:
        self.queue.close()
        self.engine.dispose()


@pytest.fixture
def world(database: str) -> Iterator[World]:
    made = World(database)
    yield made
    made.close()


@both_backends
def test_a_rollback_leaves_no_job_and_a_commit_runs_it_once(world: World) -> None:
    pool = world.queue.start_workers(concurrency=2)
    try:
        with Session(world.engine) as session:
            with world.queue.in_transaction(session):
                dropped = world.add_user(session, "dropped")
                gone = world.welcome.enqueue(dropped)
            session.rollback()
            with world.queue.in_transaction(session):
                kept = world.add_user(session, "kept")
                job = world.welcome.enqueue(kept)
            session.commit()
        eventually(lambda: world.queue.get(job.id).status is jobq.JobStatus.COMPLETED)
    finally:
        pool.stop(timeout=10)
    assert world.ran == [(kept, "kept")]  # once, and its row was there
    assert world.users() == ["kept"]
    # One job is stored: the kept one (SQLite may give it the rolled-back job's id).
    assert [(j.id, j.payload) for j in world.queue.list()] == [(job.id, job.payload)]
    assert f"[{kept}]" in job.payload
    assert f"[{dropped}]" in gone.payload


@both_backends
def test_a_running_pool_never_sees_an_uncommitted_job(world: World) -> None:
    pool = world.queue.start_workers(concurrency=2)
    other = world.queue.storage
    try:
        session = Session(world.engine)
        with world.queue.in_transaction(session):
            user = world.add_user(session, "ann")
            job = world.welcome.enqueue(user)
            ids = world.welcome.enqueue_many([(user,), (user,)])
        pool.wake("default")
        # The transaction is open: from the queue's own connections there is no job.
        assert not other.has_runnable(["default"], now=FAR)
        assert other.get(job.id) is None
        assert all(other.get(i) is None for i in ids)
        if world.postgres:  # on SQLite a claim waits for the app's write lock instead
            assert other.claim(["default"], owner="spy", now=FAR, lease_seconds=30) == []
        assert world.ran == []
        assert pool.running() == []
        session.commit()
        session.close()
        assert world.ran_event.wait(10)
        eventually(lambda: len(world.ran) == 3)
    finally:
        pool.stop(timeout=10)
    assert world.ran == [(user, "ann")] * 3


@both_backends
def test_enqueues_of_every_kind_go_through_the_transaction(world: World) -> None:
    with Session(world.engine) as session, world.queue.in_transaction(session) as tx:
        user = world.add_user(session, "bo")
        plain = world.welcome.enqueue(user)
        keyed = world.welcome.options(unique_key="bo", priority=5).enqueue(user)
        again = world.welcome.options(unique_key="bo").enqueue(user)
        many = world.welcome.options(delay=60).enqueue_many([(user,)] * 3)
        by_queue = world.queue.enqueue("welcome", user)
        by_name = world.queue.enqueue_by_name("welcome", [user])
        assert again.id == keyed.id
        assert tx.target is session
        session.rollback()
    assert world.queue.list() == []
    for job_id in (plain.id, keyed.id, *many, by_queue.id, by_name.id):
        with pytest.raises(jobq.JobNotFound):
            world.queue.get(job_id)
    # Outside the block, enqueues are the queue's own again.
    assert world.queue.get(world.welcome.enqueue(user).id).status is jobq.JobStatus.PENDING


@both_backends
def test_job_enqueued_is_sent_after_the_commit_and_never_after_a_rollback(world: World) -> None:
    seen: list[int] = []

    def receiver(sender: Any, job: jobq.Job) -> None:
        seen.append(job.id)

    signals.job_enqueued.connect(receiver)
    try:
        with Session(world.engine) as session:
            with world.queue.in_transaction(session):
                first = world.welcome.enqueue(1)
            assert seen == []
            session.commit()
            assert seen == [first.id]
            with world.queue.in_transaction(session):
                world.welcome.enqueue(2)
            session.rollback()
            session.commit()  # a later, empty commit sends nothing for the rolled-back job
            with world.queue.in_transaction(session):
                savepoint = session.begin_nested()
                third = world.welcome.enqueue(3)
                savepoint.commit()
                assert seen == [first.id]  # released savepoint: still waiting for the commit
                outer = session.begin_nested()
                world.welcome.enqueue(4)
                inner = session.begin_nested()
                world.welcome.enqueue(5)
                inner.commit()
                outer.rollback()  # takes 4 and 5 (in a savepoint within it) away
            session.commit()
    finally:
        signals.job_enqueued.disconnect(receiver)
    assert seen == [first.id, third.id]
    stored = [job.id for job in world.queue.list()]
    assert stored == [first.id, third.id]


@both_backends
def test_scoped_sessions_and_connections_work_too(world: World) -> None:
    scoped = scoped_session(sessionmaker(world.engine))
    try:
        with world.queue.in_transaction(scoped):
            world.add_user(scoped(), "cy")
            from_scoped = world.welcome.enqueue(1)
        scoped.commit()
    finally:
        scoped.remove()
    with world.engine.connect() as conn:
        with world.queue.in_transaction(conn) as tx:
            from_connection = world.welcome.enqueue(2)  # begins the connection's transaction
        assert conn.in_transaction()
        conn.commit()
    tx.committed()
    with world.engine.connect() as conn:
        with world.queue.in_transaction(conn):
            rolled_back = world.welcome.enqueue(3)
        conn.rollback()
    assert world.queue.get(from_scoped.id).status is jobq.JobStatus.PENDING
    assert world.queue.get(from_connection.id).status is jobq.JobStatus.PENDING
    with pytest.raises(jobq.JobNotFound):
        world.queue.get(rolled_back.id)
    assert world.queue.run_until_empty() == 2


@both_backends
def test_an_engine_or_another_database_is_refused(world: World, tmp_path: Any) -> None:
    with pytest.raises(ConfigurationError, match="not an Engine"):
        world.queue.in_transaction(world.engine).__enter__()
    with pytest.raises(ConfigurationError, match="needs the app's Session"):
        world.queue.in_transaction(None).__enter__()
    if world.postgres:
        other = create_engine(str(world.engine.url).split("?")[0])  # public schema: no jobq
        match = "no table jobq_jobs"
    else:
        other = create_engine(f"sqlite:///{tmp_path / 'other.db'}")
        match = "not the queue's file"
    try:
        with (
            Session(other) as session,
            world.queue.in_transaction(session),
            pytest.raises(ConfigurationError, match=match),
        ):
            world.welcome.enqueue(1)
    finally:
        other.dispose()
    assert world.queue.list() == []


@both_backends
def test_batches_chains_and_dependencies_are_refused_in_the_block(world: World) -> None:
    # jobq writes these in transactions of its own: they would not roll back with
    # the app's, so the block refuses them and nothing is stored.
    outside = world.welcome.enqueue(1)
    with Session(world.engine) as session, world.queue.in_transaction(session):
        with pytest.raises(ConfigurationError, match="a batch cannot be written"):
            world.queue.batch()
        with pytest.raises(ConfigurationError, match="a chain cannot be written"):
            world.queue.chain(world.welcome.si(2))
        with pytest.raises(ValueError, match=r"depends_on .* cannot be enqueued"):
            world.welcome.options(depends_on=[outside]).enqueue(3)
        session.commit()
    assert [job.id for job in world.queue.list()] == [outside.id]
    assert world.queue.list_batches() == []


def test_an_inline_queue_runs_the_jobs_after_the_commit(tmp_path: Any) -> None:
    path = tmp_path / "inline.db"
    queue = DurableQueue(path, driver="sqlite3", inline=True)
    engine = create_engine(f"sqlite:///{path}")
    ran: list[int] = []
    task = queue.task("note")(ran.append)
    try:
        with Session(engine) as session:
            with queue.in_transaction(session):
                task.enqueue(1)
            assert ran == []
            session.commit()
            assert ran == [1]
    finally:
        queue.close()
        engine.dispose()


def test_the_pool_is_woken_after_the_commit_not_before(tmp_path: Any) -> None:
    path = tmp_path / "wake.db"
    queue = DurableQueue(path, driver="sqlite3", poll_interval=3600)
    engine = create_engine(f"sqlite:///{path}")
    done = threading.Event()
    task = queue.task("ping")(lambda: done.set())
    pool = queue.start_workers(concurrency=1)
    woken: list[str | None] = []
    wake = pool.wake

    def recording_wake(queue_name: str | None = None) -> None:
        woken.append(queue_name)
        wake(queue_name)

    pool.wake = recording_wake  # type: ignore[method-assign]
    try:
        with Session(engine) as session:
            with queue.in_transaction(session):
                task.enqueue()
            assert woken == []  # written, not committed: nobody is told
            session.commit()
            assert woken == ["default"]  # told by the commit itself
        assert done.wait(10)
    finally:
        pool.stop(timeout=10)
        queue.close()
        engine.dispose()


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix datagram sockets: pools poll")
def test_the_commit_wakes_a_pool_of_another_process_through_the_channel(tmp_path: Path) -> None:
    database = str(tmp_path / "jobs.db")
    script = str(ROOT / "tests" / "integration" / "_wakeup_child.py")
    child = subprocess.Popen(  # a pool that polls every 30 s and records its wake-ups
        [sys.executable, script, "pool", database, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        wait_for(lambda: (tmp_path / "ready").exists(), "the pool started", timeout=60)
        queue = DurableQueue(database, driver="sqlite3")
        record = queue.task("record", queue="mail")(lambda: None)
        engine = create_engine(f"sqlite:///{database}")
        with Session(engine) as session:
            with queue.in_transaction(session):
                record.enqueue()
            session.commit()
        wait_for(lambda: (tmp_path / "ran.txt").exists(), "the job ran", timeout=25)
        # The other process heard of it through the channel, sent after the commit.
        assert (tmp_path / "woken.txt").read_text().split()[0] == "mail"
        queue.close()
        engine.dispose()
    finally:
        (tmp_path / "stop").touch()
        assert child.wait(60) == 0


@both_backends
def test_the_block_holds_for_its_own_thread_only(world: World) -> None:
    from_thread: list[jobq.Job] = []
    with Session(world.engine) as session, world.queue.in_transaction(session):
        worker = threading.Thread(target=lambda: from_thread.append(world.welcome.enqueue(1)))
        worker.start()
        worker.join(30)
        # Enqueued by another thread: the queue's own transaction, committed already.
        assert world.queue.storage.get(from_thread[0].id) is not None
        inside = world.welcome.enqueue(2)
        assert world.queue.storage.get(inside.id) is None
        session.rollback()
    assert [job.id for job in world.queue.list()] == [from_thread[0].id]


@pytest.mark.postgres
def test_postgres_delivers_the_notify_at_the_commit(tmp_path: Path) -> None:
    import queue as queue_module

    from tests.helpers import drop_postgres_schema, postgres_schema_url

    url = postgres_schema_url()
    queue = DurableQueue(url)
    engine = create_engine(engine_url(url))
    mail = queue.task("mail", queue="mail")(lambda: None)
    marker = queue.task("marker", queue="marker")(lambda: None)
    later = queue.task("later", queue="later")(lambda: None)
    heard: queue_module.Queue[str | None] = queue_module.Queue()
    unsubscribe = queue.storage.subscribe(heard.put)  # type: ignore[attr-defined]
    try:
        heard_names: list[str | None] = []

        def until(name: str) -> None:
            while name not in heard_names:
                heard_names.append(heard.get(timeout=30))

        for _ in range(150):  # the listener is up once it hears one (bounded: 30 s)
            marker.enqueue()
            with contextlib.suppress(queue_module.Empty):
                heard_names.append(heard.get(timeout=0.2))
            if "marker" in heard_names:
                break
        until("marker")
        with Session(engine) as session:
            with queue.in_transaction(session):
                mail.enqueue()
            # Notifications arrive in commit order: once a later, committed one is
            # heard, one sent before it by the open transaction would have been too.
            later.enqueue()
            until("later")
            assert "mail" not in heard_names
            session.commit()
        until("mail")
    finally:
        unsubscribe()
        queue.close()
        engine.dispose()
        drop_postgres_schema(url)
