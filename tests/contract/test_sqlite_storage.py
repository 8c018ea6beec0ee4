"""What only the SQLite backend promises: pragmas, query plans, locking, schema
versions, fork safety and crash durability."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from jobq.errors import JobqError
from jobq.job import JobStatus
from jobq.storage import SQLiteStorage
from jobq.storage.base import (
    Completion,
    JobError,
    NewJob,
    SchemaVersionError,
    StorageError,
    WrongProcessError,
)
from jobq.storage.sqlite.driver import _Sqlite3PositionalDriver
from jobq.storage.sqlite.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from jobq.storage.sqlite.sql import CANDIDATES, LIVE_BY_KEY
from tests.contract._backends import open_storage
from tests.helpers import STORAGE_CHILD

T0 = 1_000_000.0
CHILD = str(STORAGE_CHILD)


@pytest.fixture(params=["sqlite3", "apsw"])
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def pragma(storage: SQLiteStorage, name: str) -> Any:
    return storage._db.conn().query(f"PRAGMA {name}")[0][0]


def test_file_is_in_wal_mode_with_chosen_settings(tmp_path: Path, driver: str) -> None:
    with SQLiteStorage(tmp_path / "a.db", driver=driver) as storage:
        assert storage.driver == driver
        assert pragma(storage, "journal_mode") == "wal"
        assert pragma(storage, "synchronous") == 1  # NORMAL
        # apsw waits through jobq's own busy handler (finer sleeps), which SQLite
        # reports as no timeout; test_apsw_waits_for_the_lock_up_to_busy_timeout.
        assert pragma(storage, "busy_timeout") == (5000 if driver == "sqlite3" else 0)
        assert pragma(storage, "journal_size_limit") == 64 * 1024 * 1024
        assert pragma(storage, "user_version") == SCHEMA_VERSION
    with SQLiteStorage(
        tmp_path / "a.db",
        driver=driver,
        synchronous="FULL",
        busy_timeout=0.25,
        journal_size_limit=1024,
    ) as storage:
        assert pragma(storage, "synchronous") == 2  # FULL
        assert pragma(storage, "busy_timeout") == (250 if driver == "sqlite3" else 0)
        assert pragma(storage, "journal_size_limit") == 1024


def test_apsw_waits_for_the_lock_up_to_busy_timeout(tmp_path: Path) -> None:
    import apsw

    path = tmp_path / "a.db"
    with SQLiteStorage(path, driver="apsw", busy_timeout=0.3) as storage:
        holder = apsw.Connection(str(path))
        holder.execute("BEGIN IMMEDIATE")
        began = time.monotonic()
        with pytest.raises(StorageError, match="write lock"):
            storage.pause("default", now=T0)
        assert time.monotonic() - began >= 0.3
        # Freed while a writer waits: the writer gets it.
        timer = threading.Timer(0.05, lambda: holder.execute("COMMIT"))
        timer.start()
        storage.pause("default", now=T0)
        timer.join()
        assert storage.paused_queues() == frozenset({"default"})
        holder.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"path": ":memory:"}, "must name a database file"),
        ({"synchronous": "OFF"}, "synchronous must be 'NORMAL' or 'FULL', got 'OFF'"),
        ({"busy_timeout": -1}, "busy_timeout must be .* got -1"),
        ({"journal_size_limit": -2}, "journal_size_limit must be .* got -2"),
        ({"driver": "pysqlite"}, "driver must be 'auto', 'sqlite3' or 'apsw', got 'pysqlite'"),
    ],
)
def test_bad_options_are_refused(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    options: dict[str, Any] = {"path": tmp_path / "a.db", **kwargs}
    with pytest.raises(ValueError, match=match):
        SQLiteStorage(**options)


def test_one_file_cannot_be_open_with_both_drivers(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with SQLiteStorage(path, driver="sqlite3"):
        with pytest.raises(StorageError, match="already open with driver='sqlite3'"):
            SQLiteStorage(str(tmp_path / "." / "a.db"), driver="apsw")
        SQLiteStorage(path, driver="sqlite3").close()  # the same driver is fine
    with SQLiteStorage(path, driver="apsw") as storage:  # released on close
        assert storage.driver == "apsw"


def test_connections_of_finished_threads_are_closed(tmp_path: Path, driver: str) -> None:
    with SQLiteStorage(tmp_path / "a.db", driver=driver) as storage:
        job_id = storage.enqueue(NewJob("t", "[]"), now=T0).job.id
        seen: list[int] = []
        for _ in range(10):  # like a server that starts a thread per request
            thread = threading.Thread(target=lambda: seen.append(storage.get(job_id).id))  # type: ignore[union-attr]
            thread.start()
            thread.join(5)
        assert seen == [job_id] * 10
        thread = threading.Thread(target=lambda: storage.get(job_id))
        thread.start()
        thread.join(5)
        # This thread's connection, and the last thread's (closed on the next open).
        assert len(storage._db._connections) <= 2


def test_positional_driver_rewrites_numbered_placeholders(tmp_path: Path) -> None:
    # Used on Pythons whose sqlite3 mistakes ?1 for a named placeholder (early 3.12).
    driver = _Sqlite3PositionalDriver()
    raw = driver.connect(str(tmp_path / "p.db"), 1000)
    try:
        assert driver.query(raw, "SELECT ?2, ?1, ?2", ("a", "b")) == [("b", "a", "b")]
        driver.run(raw, "CREATE TABLE t (x, y)", ())
        assert driver.run_many(raw, "INSERT INTO t VALUES (?2, ?1)", [(1, 2), (3, 4)]) == 2
        assert driver.query(raw, "SELECT x, y FROM t ORDER BY x", ()) == [(2, 1), (4, 3)]
    finally:
        driver.close(raw)


def test_closed_storage_refuses_work(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "a.db")
    storage.close()
    storage.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        storage.get(1)


def test_claim_reads_the_index_in_order_without_sorting(tmp_path: Path, driver: str) -> None:
    with SQLiteStorage(tmp_path / "a.db", driver=driver) as storage:
        conn = storage._db.conn()
        plan = " | ".join(
            str(row[-1])
            for row in conn.query(
                f"EXPLAIN QUERY PLAN {CANDIDATES}", (None, None, T0, "default", 5)
            )
        )
        assert "jobs_claim" in plan
        assert "TEMP B-TREE" not in plan, plan
        unique = conn.query(f"EXPLAIN QUERY PLAN {LIVE_BY_KEY}", ("t", "key"))
        assert "jobs_unique" in str(unique)


def test_listing_final_jobs_reads_an_index_in_id_order(tmp_path: Path) -> None:
    statements: list[str] = []
    with SQLiteStorage(tmp_path / "a.db", driver="sqlite3") as storage:
        conn = storage._db.conn()
        conn.raw.set_trace_callback(statements.append)
        storage.list_jobs(status=JobStatus.FAILED, after_id=5, newest_first=True)
        conn.raw.set_trace_callback(None)
        rows = conn.query(f"EXPLAIN QUERY PLAN {statements[-1]}")
        plan = " | ".join(str(row[-1]) for row in rows)
    assert "jobs_finished" in plan
    assert "TEMP B-TREE" not in plan, plan


def _claim_steps(storage: SQLiteStorage, queue: str = "default") -> int:
    """Virtual machine steps SQLite runs for one claim (a measure of work, not time)."""
    raw = storage._db.conn().raw
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    raw.set_progress_handler(count, 10)
    try:
        storage.claim([queue], owner="w", now=T0, lease_seconds=30)
    finally:
        raw.set_progress_handler(None, 0)
    return steps


def test_claim_work_does_not_grow_with_the_table(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / "a.db") as storage:
        storage.enqueue_many([NewJob("t", "[]") for _ in range(100)], now=T0)
        small = _claim_steps(storage)
        # 60,000 more rows: runnable, finished, and scheduled for later at a higher
        # priority in another queue, plus a queue where nothing is due yet.
        storage.enqueue_many([NewJob("t", "[]") for _ in range(20_000)], now=T0)
        for _ in range(10):
            done = storage.claim(["default"], owner="w", now=T0, lease_seconds=30, limit=1000)
            storage.complete_many([Completion(j.id, j.lease_token or "") for j in done], now=T0)
        storage.enqueue_many(
            [NewJob("t", "[]", queue="later", run_at=T0 + 99, priority=9) for _ in range(30_000)],
            now=T0,
        )
        large = _claim_steps(storage)
        idle = _claim_steps(storage, "later")
    assert large <= 2 * small + 10, (small, large)
    assert idle <= 2 * small + 10, (small, idle)


def _stats_steps(storage: SQLiteStorage) -> int:
    """Virtual machine steps SQLite runs for stats() and oldest_runnable_age()."""
    raw = storage._db.conn().raw
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    raw.set_progress_handler(count, 10)
    try:
        storage.stats(now=T0)
        storage.oldest_runnable_age(now=T0)
    finally:
        raw.set_progress_handler(None, 0)
    return steps


def test_stats_work_does_not_grow_with_the_table(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / "a.db") as storage:
        storage.enqueue_many([NewJob("t", "[]", queue=q) for q in ("a", "b") * 50], now=T0)
        small = _stats_steps(storage)
        # 40,000 more rows: jobs finished over a minute ago, and a backlog of runnable jobs.
        storage.enqueue_many([NewJob("t", "[]", queue="a") for _ in range(20_000)], now=T0 - 200)
        for _ in range(20):
            done = storage.claim(["a"], owner="w", now=T0 - 200, lease_seconds=30, limit=1000)
            storage.complete_many(
                [Completion(j.id, j.lease_token or "") for j in done], now=T0 - 100
            )
        storage.enqueue_many([NewJob("t", "[]", queue="b") for _ in range(20_000)], now=T0 - 5)
        large = _stats_steps(storage)
    assert large <= 2 * small + 10, (small, large)


@pytest.mark.slow
def test_claim_work_stays_flat_with_a_million_rows(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / "a.db") as storage:
        storage.enqueue_many([NewJob("t", "[]") for _ in range(100)], now=T0)
        small = _claim_steps(storage)
        for _ in range(10):
            storage.enqueue_many([NewJob("t", "[]", queue="big") for _ in range(50_000)], now=T0)
            storage.enqueue_many(
                [
                    NewJob("t", "[]", queue="later", run_at=T0 + 99, priority=9)
                    for _ in range(50_000)
                ],
                now=T0,
            )
        assert _claim_steps(storage) <= 2 * small + 10  # 100 due among 1,000,100 rows
        assert _claim_steps(storage, "big") <= 2 * small + 10  # 500,000 due
        assert _claim_steps(storage, "later") <= 2 * small + 10  # 500,000, none due yet


def test_every_write_transaction_begins_immediate(tmp_path: Path) -> None:
    statements: list[str] = []
    with SQLiteStorage(tmp_path / "a.db", driver="sqlite3") as storage:
        storage._db.conn().raw.set_trace_callback(statements.append)
        job_id = storage.enqueue(NewJob("t", "[]", unique_key="k"), now=T0).job.id
        storage.enqueue_many([NewJob("t", "[]") for _ in range(3)], now=T0)
        jobs = storage.claim(["default", "x"], owner="w", now=T0, lease_seconds=5, limit=4)
        storage.renew([(j.id, j.lease_token or "") for j in jobs], now=T0, lease_seconds=5)
        storage.set_progress(jobs[0].id, jobs[0].lease_token or "", "1", now=T0)
        storage.complete(jobs[0].id, jobs[0].lease_token or "", now=T0)
        storage.complete_many([Completion(jobs[1].id, jobs[1].lease_token or "")], now=T0)
        storage.fail(jobs[2].id, jobs[2].lease_token or "", JobError("E", "m"), now=T0)
        storage.rescue_expired(now=T0 + 60)
        storage.request_cancel(job_id, now=T0)
        storage.retry(job_id, now=T0)
        storage.pause("x", now=T0)
        storage.resume("x")
        storage.stats(now=T0)
        storage.purge(older_than=T0 + 1)
        storage._db.conn().raw.set_trace_callback(None)
    writes = ("INSERT", "UPDATE", "DELETE")
    in_transaction: str | None = None
    seen_writes = 0
    for statement in (s.strip() for s in statements):
        word = statement.split(None, 1)[0].upper()
        if word == "BEGIN":
            assert in_transaction is None
            in_transaction = statement.upper()
        elif word in ("COMMIT", "ROLLBACK"):
            in_transaction = None
        elif word in writes:
            seen_writes += 1
            assert in_transaction == "BEGIN IMMEDIATE", statement
    assert seen_writes >= 12


def test_writer_waits_for_the_lock_instead_of_failing(tmp_path: Path, driver: str) -> None:
    path = tmp_path / "a.db"
    # The lock holder must use the same SQLite library: two copies of SQLite in
    # one process do not see each other's locks.
    with SQLiteStorage(path, driver=driver) as storage, SQLiteStorage(path, driver=driver) as other:
        locked, release = threading.Event(), threading.Event()

        def hold_lock() -> None:
            with other._db.write() as conn:
                conn.run("INSERT INTO paused_queues VALUES ('held', 1.0)")
                locked.set()
                release.wait(5)

        holder = threading.Thread(target=hold_lock)
        holder.start()
        timer = threading.Timer(0.2, release.set)
        try:
            assert locked.wait(5)
            timer.start()
            storage.enqueue(NewJob("t", "[]"), now=T0)  # blocks until the holder commits
            assert release.is_set()
            assert storage.paused_queues() == frozenset({"held"})
        finally:
            release.set()
            timer.cancel()
            holder.join(5)


def test_busy_for_too_long_raises_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    # The lock holder is the sqlite3 module: the storage must use the same library.
    with SQLiteStorage(path, driver="sqlite3", busy_timeout=0.01) as storage:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StorageError, match="could not take the write lock") as info:
                storage.enqueue(NewJob("t", "[]"), now=T0)
            assert isinstance(info.value, JobqError)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert storage.list_jobs() == []
        storage.enqueue(NewJob("t", "[]"), now=T0)  # usable again afterwards


def test_newer_schema_is_refused(tmp_path: Path, driver: str) -> None:
    path = tmp_path / "a.db"
    SQLiteStorage(path, driver=driver).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(SchemaVersionError, match="upgrade jobq") as info:
        SQLiteStorage(path, driver=driver)
    assert (info.value.found, info.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)


def test_migration_applies_only_the_missing_steps(tmp_path: Path, driver: str) -> None:
    with SQLiteStorage(tmp_path / "a.db", driver=driver) as storage:
        job_id = storage.enqueue(NewJob("t", "[]"), now=T0).job.id
        conn = storage._db.conn()
        extra = (*MIGRATIONS, ("ALTER TABLE jobs ADD COLUMN tag TEXT",))
        assert migrate(conn, extra) == SCHEMA_VERSION
        assert migrate(conn, extra) == SCHEMA_VERSION + 1  # already there: nothing to do
        assert conn.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION + 1
        assert conn.query("SELECT tag FROM jobs WHERE id = ?", (job_id,)) == [(None,)]


def test_checkpoint_truncate_empties_the_wal(tmp_path: Path, driver: str) -> None:
    path = tmp_path / "a.db"
    with SQLiteStorage(path, driver=driver) as storage:
        storage.enqueue_many([NewJob("t", "[]") for _ in range(2000)], now=T0)
        wal = Path(f"{path}-wal")
        assert wal.stat().st_size > 0
        busy, _, _ = storage.checkpoint("TRUNCATE")
        assert busy == 0
        assert wal.stat().st_size == 0
        assert len(storage.list_jobs(limit=5000)) == 2000
        with pytest.raises(ValueError, match="mode must be"):
            storage.checkpoint("NOW")  # type: ignore[arg-type]


def test_wal_reset_bug_flag_follows_the_version(tmp_path: Path, driver: str) -> None:
    with SQLiteStorage(tmp_path / "a.db", driver=driver) as storage:
        expected = (3, 7, 0) <= storage.sqlite_version < (3, 51, 3)
        assert storage.affected_by_wal_reset_bug is expected


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_opens_its_own_connection(tmp_path: Path, driver: str) -> None:
    storage = SQLiteStorage(tmp_path / "a.db", driver=driver)
    try:
        job_id = storage.enqueue(NewJob("t", "[]"), now=T0).job.id
        inherited = storage._db.conn()
        pid = os.fork()
        if pid == 0:  # child: report through the exit code, never return into pytest
            code = 1
            try:
                try:
                    inherited.query("SELECT 1")
                except WrongProcessError:
                    job = storage.get(job_id)
                    assert job is not None
                    assert storage._db.conn() is not inherited
                    storage.enqueue(NewJob("from-child", "[]"), now=T0)
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert storage._db.conn() is inherited  # the parent's connection is untouched
        assert [job.name for job in storage.list_jobs()] == ["t", "from-child"]
    finally:
        storage.close()


@pytest.mark.slow  # starts processes: the full suite runs it, not --fast
def test_committed_job_survives_kill_9(tmp_path: Path, driver: str) -> None:
    spec = {"backend": driver, "path": str(tmp_path / "a.db"), "driver": driver, "returning": True}
    child = subprocess.Popen(
        [sys.executable, CHILD, json.dumps(spec), "enqueue-and-hang", "survivor"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdin is not None
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        job_id = json.loads(child.stdout.readline())["id"]  # printed after COMMIT
        child.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()
    storage = open_storage(spec)
    try:
        job = storage.get(job_id)
        assert job is not None
        assert (job.name, job.status) == ("survivor", JobStatus.PENDING)
    finally:
        storage.close()


def test_enqueue_many_is_all_or_nothing(tmp_path: Path, driver: str) -> None:
    with SQLiteStorage(tmp_path / "a.db", driver=driver) as storage:
        # A trigger makes the database itself refuse the last job of the batch.
        storage._db.conn().run(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON jobs WHEN NEW.name = 'boom' "
            "BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
        )
        batch = [NewJob("ok", "[]") for _ in range(250)] + [
            NewJob("u", "[]", unique_key="k"),
            NewJob("boom", "[]"),
        ]
        with pytest.raises(StorageError, match="refused by test trigger"):
            storage.enqueue_many(batch, now=T0)
        assert storage.list_jobs() == []
        assert storage.enqueue_many(batch[:-1], now=T0)[-1] == 251


def test_transaction_rolls_back_on_error(tmp_path: Path, driver: str) -> None:
    with SQLiteStorage(tmp_path / "a.db", driver=driver) as storage:

        def write_then_raise() -> None:
            with storage._db.write() as conn:
                conn.run("INSERT INTO paused_queues VALUES ('x', 1.0)")
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            write_then_raise()
        assert storage.paused_queues() == frozenset()
        started = time.monotonic()
        storage.pause("y", now=T0)  # the write lock was released
        assert time.monotonic() - started < 1.0


MOUNTS = """\
22 1 0:21 / / rw - ext4 /dev/sda1 rw
40 22 0:45 / /mnt/share rw,relatime - nfs4 server:/export rw
41 22 0:46 / /mnt/share/local rw - tmpfs tmpfs rw
42 22 0:47 / /srv/my\\040files rw - cifs //host/files rw
"""


def test_the_filesystem_of_a_path_is_read_from_the_mount_table() -> None:
    from jobq.storage.sqlite.schema import NETWORK_FILESYSTEMS, filesystem_type

    assert filesystem_type("/mnt/share/app/jobs.db", MOUNTS) == "nfs4"
    assert filesystem_type("/mnt/share/local/jobs.db", MOUNTS) == "tmpfs"
    assert filesystem_type("/mnt/shared/jobs.db", MOUNTS) == "ext4"  # not under /mnt/share
    assert filesystem_type("/srv/my files/jobs.db", MOUNTS) == "cifs"
    assert {"nfs4", "cifs"} <= NETWORK_FILESYSTEMS


def test_a_database_on_a_network_filesystem_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobq.storage.sqlite import schema as _sqlite_schema

    monkeypatch.setattr(_sqlite_schema, "filesystem_type", lambda path, mountinfo=None: "nfs4")
    with pytest.raises(StorageError, match=r"network filesystem \(nfs4\).*PostgreSQL"):
        SQLiteStorage(tmp_path / "jobs.db")
    assert not (tmp_path / "jobs.db").exists()
