"""The storage contract, jobs written through the app's own connection
(:mod:`jobq.storage.external`): invisible until the app commits, gone with its
rollback, unique keys as usual, and connections that cannot work refused.

Every test runs once per backend (see conftest.py), with a real second
connection of the driver an app would use: ``sqlite3`` (or ``apsw`` for the apsw
backend) on the same file, psycopg on the same schema. Redis cannot join an SQL
transaction: its one test checks that it refuses, naming what can.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from jobq.errors import ConfigurationError
from jobq.job import JobStatus
from jobq.storage.base import NewJob, Storage
from tests.contract._backends import open_storage
from tests.contract._support import T0
from tests.helpers import drop_postgres_schema, postgres_schema_url


class App:
    """The app's side: its own connection, a table of its own, and its transactions."""

    def __init__(self, spec: dict[str, Any], *, create: bool = True) -> None:
        self.backend = spec["backend"]
        self.raw = self.connect(spec)
        self.postgres = self.backend == "postgres"
        self.apsw = self.backend == "apsw"
        if create:
            key = "SERIAL" if self.postgres else "INTEGER"
            self.execute(f"CREATE TABLE app_rows (id {key} PRIMARY KEY, note TEXT)")
            self.commit()

    @staticmethod
    def connect(spec: dict[str, Any]) -> Any:
        if spec["backend"] == "postgres":
            import psycopg

            return psycopg.connect(spec["url"])
        if spec["backend"] == "apsw":
            import apsw

            raw = apsw.Connection(spec["path"])
            raw.set_busy_timeout(5000)  # as sqlite3 does by default
            return raw
        return sqlite3.connect(spec["path"])

    def begin(self) -> None:
        if self.apsw:  # apsw never begins on its own; the others do at the first write
            self.raw.execute("BEGIN IMMEDIATE")

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if self.postgres:
            cursor = self.raw.execute(sql.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []
        if self.apsw:
            return list(self.raw.execute(sql, params))
        return list(self.raw.execute(sql, params).fetchall())

    def add_row(self, note: str) -> None:
        self.execute("INSERT INTO app_rows (note) VALUES (?)", (note,))

    def commit(self) -> None:
        if self.apsw:
            if self.raw.in_transaction:
                self.raw.execute("COMMIT")
        else:
            self.raw.commit()

    def rollback(self) -> None:
        if self.apsw:
            self.raw.execute("ROLLBACK")
        else:
            self.raw.rollback()

    def close(self) -> None:
        self.raw.close()


@pytest.fixture
def app(spec: dict[str, Any], storage: Storage) -> Iterator[App]:
    """The app's connection to the queue's database (opened after the storage, so
    the schema is there)."""
    opened = App(spec)
    yield opened
    opened.close()


def _count(storage: Storage, status: JobStatus) -> int:
    queue = storage.stats(now=T0 + 1).queues.get("default")
    return 0 if queue is None else queue.counts[status]


def _visible(storage: Storage) -> bool:
    return storage.has_runnable(["default"], now=T0 + 1)


def test_a_job_is_invisible_until_the_app_commits_then_runs(storage: Storage, app: App) -> None:
    app.begin()
    app.add_row("alice")
    enqueued = storage.enqueue_on(app.raw, NewJob("welcome", '["alice"]'), now=T0)
    assert enqueued.created
    job = enqueued.job
    assert (job.status, job.payload, job.name) == (JobStatus.PENDING, '["alice"]', "welcome")
    # Seen from the queue's own connections while the transaction is open: nothing.
    assert storage.get(job.id) is None
    assert not _visible(storage)
    if app.postgres:  # on SQLite a claim, a write, waits for the app's write lock
        assert storage.claim(["default"], owner="w", now=T0 + 1, lease_seconds=30) == []
    assert _count(storage, JobStatus.PENDING) == 0
    app.commit()
    assert _visible(storage)
    claimed = storage.claim(["default"], owner="w", now=T0 + 1, lease_seconds=30)
    assert [c.id for c in claimed] == [job.id]
    assert _count(storage, JobStatus.PROCESSING) == 1


def test_a_rollback_takes_the_job_with_the_app_rows(storage: Storage, app: App) -> None:
    app.begin()
    app.add_row("bob")
    job = storage.enqueue_on(app.raw, NewJob("welcome", "[]"), now=T0).job
    ids = storage.enqueue_many_on(app.raw, [NewJob("welcome", f"[{i}]") for i in range(3)], now=T0)
    app.rollback()
    assert storage.get(job.id) is None
    assert all(storage.get(i) is None for i in ids)
    assert not _visible(storage)
    assert storage.list_jobs() == []
    assert _count(storage, JobStatus.PENDING) == 0  # the counts kept by triggers rolled back too
    assert storage.enqueue(NewJob("later", "[]"), now=T0).created  # the queue works on


def test_many_jobs_go_in_together_in_order(storage: Storage, app: App) -> None:
    app.begin()
    jobs = [NewJob("bulk", f"[{i}]", priority=i % 3) for i in range(250)]
    ids = storage.enqueue_many_on(app.raw, jobs, now=T0)
    assert len(set(ids)) == 250
    assert ids == sorted(ids)
    assert storage.enqueue_many_on(app.raw, [], now=T0) == []
    assert storage.list_jobs(limit=1000) == []
    app.commit()
    stored = storage.list_jobs(limit=1000)
    assert [job.id for job in stored] == ids
    assert [job.payload for job in stored] == [f"[{i}]" for i in range(250)]
    assert _count(storage, JobStatus.PENDING) == 250


def test_unique_keys_hold_inside_the_transaction_and_against_committed_jobs(
    storage: Storage, app: App
) -> None:
    held = storage.enqueue(NewJob("sync", '["old"]', unique_key="held"), now=T0).job
    app.begin()
    first = storage.enqueue_on(app.raw, NewJob("sync", "[1]", unique_key="k"), now=T0)
    again = storage.enqueue_on(app.raw, NewJob("sync", "[2]", unique_key="k"), now=T0)
    assert first.created
    assert not again.created
    assert again.job.id == first.job.id
    keep = storage.enqueue_on(app.raw, NewJob("sync", "[3]", unique_key="held"), now=T0)
    assert not keep.created
    assert keep.job.id == held.id
    new = NewJob("sync", '["new"]', unique_key="held", on_duplicate="replace")
    replaced = storage.enqueue_on(app.raw, new, now=T0)
    assert replaced.replaced
    assert replaced.job.id == held.id
    many = [NewJob("sync", "[4]", unique_key="k"), NewJob("sync", "[5]", unique_key="m")]
    ids = storage.enqueue_many_on(app.raw, many, now=T0)
    assert ids[0] == first.job.id
    assert ids[1] not in (first.job.id, held.id)
    assert storage.get(held.id).payload == '["old"]'  # type: ignore[union-attr]
    app.rollback()  # the replace goes too
    assert storage.get(held.id).payload == '["old"]'  # type: ignore[union-attr]
    assert storage.get(first.job.id) is None


def test_a_bad_job_is_refused_before_anything_is_written(storage: Storage, app: App) -> None:
    app.begin()
    with pytest.raises(TypeError, match="payload must be JSON text"):
        storage.enqueue_on(app.raw, NewJob("t", {"a": 1}), now=T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="jobs\\[1\\]"):
        storage.enqueue_many_on(app.raw, [NewJob("t", "[]"), NewJob("", "[]")], now=T0)
    app.commit()
    assert storage.list_jobs() == []


def test_an_autocommit_connection_without_a_transaction_is_refused(
    spec: dict[str, Any], storage: Storage
) -> None:
    if spec["backend"] == "postgres":
        import psycopg

        raw: Any = psycopg.connect(spec["url"], autocommit=True)
    elif spec["backend"] == "apsw":
        import apsw

        raw = apsw.Connection(spec["path"])  # outside BEGIN every statement commits
    else:
        raw = sqlite3.connect(spec["path"], isolation_level=None)
    try:
        with pytest.raises(ConfigurationError, match="autocommit mode and no transaction"):
            storage.enqueue_on(raw, NewJob("t", "[]"), now=T0)
        with pytest.raises(ConfigurationError, match="autocommit mode and no transaction"):
            storage.enqueue_many_on(raw, [NewJob("t", "[]")], now=T0)
        assert storage.list_jobs() == []
        # Inside an explicit transaction the same connection is fine.
        if spec["backend"] == "postgres":
            with raw.transaction():
                storage.enqueue_on(raw, NewJob("t", "[]"), now=T0)
        else:
            raw.execute("BEGIN")
            storage.enqueue_on(raw, NewJob("t", "[]"), now=T0)
            raw.execute("COMMIT")
        assert len(storage.list_jobs()) == 1
    finally:
        raw.close()


def test_a_connection_to_another_database_is_refused(
    spec: dict[str, Any], storage: Storage, tmp_path: Any
) -> None:
    other = dict(spec)
    if spec["backend"] == "postgres":
        other["url"] = postgres_schema_url()  # an empty schema: no jobq_jobs there
    else:
        other["path"] = str(tmp_path / "other.db")
    try:
        raw = App.connect(other)
        try:
            if spec["backend"] == "apsw":
                raw.execute("BEGIN")
            match = "no table jobq_jobs" if spec["backend"] == "postgres" else "not the queue's"
            with pytest.raises(ConfigurationError, match=match):
                storage.enqueue_on(raw, NewJob("t", "[]"), now=T0)
        finally:
            raw.close()
        if spec["backend"] == "postgres":
            # Another schema with jobq tables of its own: another queue's, refused too.
            open_storage(other).close()
            raw = App.connect(other)
            try:
                with pytest.raises(ConfigurationError, match="another jobq_jobs table"):
                    storage.enqueue_on(raw, NewJob("t", "[]"), now=T0)
            finally:
                raw.close()
    finally:
        if spec["backend"] == "postgres":
            drop_postgres_schema(other["url"])
    assert storage.list_jobs() == []


def test_anything_but_a_driver_connection_is_refused(storage: Storage) -> None:
    for wrong in (object(), "sqlite:///jobs.db", None):
        with pytest.raises(ConfigurationError, match="writes jobs through"):
            storage.enqueue_on(wrong, NewJob("t", "[]"), now=T0)


def test_notify_committed_takes_any_queue_names(storage: Storage) -> None:
    storage.notify_committed(["default", "emails"])
    storage.notify_committed([])


def test_a_connection_of_the_other_sqlite_library_is_refused(
    spec: dict[str, Any], storage: Storage
) -> None:
    if spec["backend"] == "postgres":
        pytest.skip("SQLite only: one process, two SQLite libraries")
    import apsw

    raw: Any = sqlite3.connect(spec["path"]) if spec["backend"] == "apsw" else None
    raw = raw or apsw.Connection(spec["path"])
    try:
        with pytest.raises(ConfigurationError, match="two SQLite libraries in one process"):
            storage.enqueue_on(raw, NewJob("t", "[]"), now=T0)
    finally:
        raw.close()
    assert storage.list_jobs() == []


def test_the_app_rows_and_the_jobs_commit_together(storage: Storage, app: App) -> None:
    for note, keep in (("kept", True), ("dropped", False), ("kept too", True)):
        app.begin()
        app.add_row(note)
        storage.enqueue_on(app.raw, NewJob("welcome", f'["{note}"]'), now=T0)
        app.commit() if keep else app.rollback()
    rows = sorted(row[0] for row in app.execute("SELECT note FROM app_rows"))
    assert rows == ["kept", "kept too"]
    assert sorted(job.payload for job in storage.list_jobs()) == ['["kept too"]', '["kept"]']


def test_an_app_connection_returning_dicts_is_left_as_it_was(
    spec: dict[str, Any], storage: Storage
) -> None:
    if spec["backend"] != "postgres":
        pytest.skip("psycopg's row factories")
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(spec["url"], row_factory=dict_row) as raw:
        job = storage.enqueue_on(raw, NewJob("t", "[]", unique_key="k"), now=T0).job
        assert storage.enqueue_many_on(raw, [NewJob("t", "[1]")], now=T0)
        assert raw.row_factory is dict_row
        assert raw.execute("SELECT 1 AS one").fetchone() == {"one": 1}
        raw.commit()
    assert storage.get(job.id) is not None


def test_two_open_transactions_racing_for_a_key_store_one_job(
    spec: dict[str, Any], storage: Storage, app: App
) -> None:
    outcome: list[Any] = []
    app.begin()
    first = storage.enqueue_on(app.raw, NewJob("sync", "[1]", unique_key="k"), now=T0)

    def racer() -> None:
        # Waits for the first transaction (PostgreSQL: the key's index entry; SQLite:
        # the write lock), then finds its job.
        other = App(spec, create=False)  # a connection of this thread
        try:
            other.begin()
            new = NewJob("sync", "[2]", unique_key="k")
            outcome.append(storage.enqueue_on(other.raw, new, now=T0))
            other.commit()
        finally:
            other.close()

    thread = threading.Thread(target=racer)
    thread.start()
    app.commit()
    thread.join(30)
    assert not thread.is_alive()
    assert not outcome[0].created
    assert outcome[0].job.id == first.job.id
    assert [job.payload for job in storage.list_jobs()] == ["[1]"]


def test_the_bulk_path_of_one_template_goes_in_with_the_transaction(
    storage: Storage, app: App
) -> None:
    template = NewJob("bulk", "", priority=2)
    app.begin()
    payloads = [f"[{i}]" for i in range(300)]
    ids = storage.enqueue_payloads_on(app.raw, template, payloads, now=T0)
    assert len(set(ids)) == 300
    assert ids == sorted(ids)
    keyed = template._replace(unique_key="one")
    same = storage.enqueue_payloads_on(app.raw, keyed, ["[1]", "[2]"], now=T0)
    assert same[0] == same[1]  # the unique key's path: the second finds the first
    assert storage.enqueue_payloads_on(app.raw, template, [], now=T0) == []
    with pytest.raises(TypeError, match="payload must be JSON text"):
        storage.enqueue_payloads_on(app.raw, template, ["[]", b"[]"], now=T0)  # type: ignore[list-item]
    assert storage.list_jobs() == []
    app.commit()
    stored = storage.list_jobs(limit=1000)
    assert [job.id for job in stored[:300]] == ids
    assert [job.payload for job in stored[:300]] == payloads
    assert {job.priority for job in stored} == {2}
    app.begin()
    gone = storage.enqueue_payloads_on(app.raw, template, ["[7]", "[8]"], now=T0)
    app.rollback()
    assert all(storage.get(i) is None for i in gone)


@pytest.mark.parametrize("spec", [pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
def test_redis_refuses_it_and_names_the_backends_that_can(storage: Storage, tmp_path: Any) -> None:
    import jobq

    raw = sqlite3.connect(tmp_path / "app.db")
    queue = jobq.DurableQueue(storage)
    task = queue.task("t")(lambda: None)
    calls = [
        lambda: storage.enqueue_on(raw, NewJob("t", "[]"), now=T0),
        lambda: storage.enqueue_many_on(raw, [NewJob("t", "[]")] * 2, now=T0),
        lambda: storage.enqueue_payloads_on(raw, NewJob("t", "[]"), ["[]", "[]"], now=T0),
    ]
    try:
        for call in calls:
            with pytest.raises(ConfigurationError, match="cannot join an SQL transaction") as err:
                call()
            assert "SQLite or PostgreSQL" in str(err.value)
        with (
            pytest.raises(ConfigurationError, match="SQLite or PostgreSQL"),
            queue.in_transaction(raw),
        ):
            task.enqueue()
    finally:
        queue.close()
        raw.close()
    assert storage.list_jobs() == []  # nothing stored
    storage.notify_committed(["default"])  # nothing to wake, and no error
