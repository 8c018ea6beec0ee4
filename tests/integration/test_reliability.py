"""Reliability under crashes, contention, lost leases and disk trouble.

Short versions of ``stress/chaos.py`` (kill -9 at random moments) and
``stress/contention.py`` (no "database is locked" reaches a caller), plus
fencing of late lease holders, a pool that cannot renew its leases, WAL growth
behind a long reader, a read-only database and a full disk. Real processes run
in their own sessions and are killed and reaped whatever happens; every wait
is bounded. The full runs and their figures: docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

import jobq
from jobq import DurableQueue, JobStatus
from jobq.storage import SQLiteStorage
from jobq.storage.base import Completion, JobError, NewJob, RenewResult, Storage
from jobq.testing import FakeClock
from stress import chaos, contention
from tests.helpers import MakeQueue, both_backends, eventually, run_child

# -- 1. kill -9 chaos --------------------------------------------------------------------


@pytest.mark.slow
@both_backends
def test_random_kill_9_of_worker_processes_loses_no_job(tmp_path: Path, database: str) -> None:
    folder = tmp_path / "chaos"
    folder.mkdir()
    # A 2 s lease: with 1 s, a heartbeat delayed 0.7 s by a loaded 2-core machine let a
    # live worker's lease lapse (a rerun the strict duplicate check rightly reports).
    figures = chaos.run(
        database,
        folder,
        processes=2,
        threads=4,
        jobs=1500,
        kills=12,
        lease=2.0,
        job_sleep=0.03,
        gap=(0.2, 0.5),
        seed=7,
        timeout=60.0,
    )
    print("\n" + figures.table())
    assert figures.problems == []
    assert figures.kills >= 10, "the jobs were done before the kills"
    # The kills hit running jobs, and those were run again: the checks had material.
    assert figures.duplicated > 0
    assert figures.rescues_measured > 0
    assert figures.lost == figures.never_ran == figures.bad_duplicates == figures.errors == 0


def _judge(
    runs: list[tuple[int, int, float]],
    sweeps: list[chaos.Sweep],
    kill: chaos.Kill,
    lease: float = 2.0,
) -> chaos.Figures:
    """The chaos checker's verdict on job 1, run as ``runs`` (attempt, pid, start time)
    by pid 100, which was killed, then by pid 200."""
    from types import SimpleNamespace

    figures = chaos.Figures("sqlite", 2, 1, 1)
    job = SimpleNamespace(
        id=1,
        status=JobStatus.COMPLETED,
        attempts=runs[-1][0],
        error=JobError("LeaseExpired", "lease expired"),
    )
    ledger = [("start", 1, pid, attempt, when) for attempt, pid, when in runs]
    chaos._check(figures, [1], [job], ledger, sweeps, {100: kill}, lease)
    return figures


def test_chaos_checker_explains_a_rerun_by_the_kill_whatever_the_times() -> None:
    # The victim started the job after the kill was sent and before it landed (seen
    # once under load): the rerun is still explained by the kill, as a fact.
    kill = chaos.Kill(sent=10.0, reaped=10.2)
    sweeps = [chaos.Sweep(12.5, 12.6, False, frozenset({1}))]
    figures = _judge([(1, 100, 10.1), (2, 200, 12.7)], sweeps, kill)
    assert figures.problems == []
    assert figures.rescues_measured == 1
    # A rerun whose earlier holder was never killed is still caught.
    other = _judge([(1, 300, 10.1), (2, 200, 12.7)], sweeps, kill)
    assert "ran again without a kill" in " ".join(other.problems)
    # So is a takeover before the kill was even sent.
    early = _judge(
        [(1, 100, 5.0), (2, 200, 9.0)], [chaos.Sweep(8.9, 8.95, False, frozenset({1}))], kill
    )
    assert "taken over before its holder was killed" in " ".join(early.problems)


def test_chaos_checker_judges_rescue_delay_by_the_sweeps_not_the_wall_clock() -> None:
    kill = chaos.Kill(sent=10.0, reaped=10.1)  # lease 2 s: over by 12.1 at the latest
    # A loaded machine: no sweep ran for 12 s. The rescue is late by the clock (the
    # old check, lease + sweep + 1 s, failed such runs) but no sweep missed it.
    slow = [
        chaos.Sweep(9.0, 9.1, False, frozenset()),
        chaos.Sweep(22.0, 22.3, False, frozenset({1})),
    ]
    figures = _judge([(1, 100, 9.5), (2, 200, 22.5)], slow, kill)
    assert figures.problems == []
    assert figures.max_rescue_delay == pytest.approx(11.9)
    # A sweep that began after the lease was over and returned without rescuing
    # it is a real miss, however quickly the rescue came afterwards.
    missed = [
        chaos.Sweep(12.2, 12.3, False, frozenset()),
        chaos.Sweep(12.4, 12.5, False, frozenset({1})),
    ]
    late = _judge([(1, 100, 9.5), (2, 200, 12.6)], missed, kill)
    assert late.late_rescues == 1
    assert "late rescues" in " ".join(late.problems)
    # One that hit its row limit may leave it for the next, and one that began
    # before the bound may have seen the lease still valid.
    busy = [
        chaos.Sweep(12.05, 12.3, False, frozenset()),
        chaos.Sweep(12.2, 12.3, True, frozenset()),
        chaos.Sweep(12.4, 12.5, False, frozenset({1})),
    ]
    assert _judge([(1, 100, 9.5), (2, 200, 12.6)], busy, kill).problems == []


# -- 2. contention -------------------------------------------------------------------------


@pytest.mark.slow
def test_no_locked_error_reaches_a_caller_and_deferred_transactions_would(tmp_path: Path) -> None:
    immediate = contention.run(
        str(tmp_path / "immediate.db"), tmp_path / "immediate", processes=3, threads=4, duration=8.0
    )
    print("\n" + immediate.table())
    assert immediate.problems == []
    assert immediate.enqueued > 500, "the enqueuer hardly ran"
    assert immediate.stats_reads > 40, "the stats reader hardly ran"
    assert immediate.completed > 0
    assert dict(immediate.errors) == {}

    # The same run with BEGIN DEFERRED: a read lock upgraded mid-transaction.
    deferred = contention.run(
        str(tmp_path / "deferred.db"),
        tmp_path / "deferred",
        begin="BEGIN DEFERRED",
        processes=3,
        threads=4,
        duration=5.0,
    )
    print("\n" + deferred.table())
    assert deferred.problems == []
    assert deferred.locked_errors > 0, "deferred transactions gave no locked error"


# -- 3. fencing ------------------------------------------------------------------------------


def test_a_late_holder_changes_nothing_once_its_lease_was_taken_over(
    make_queue: MakeQueue, clock: FakeClock
) -> None:
    storage = make_queue(clock=clock).storage
    t0 = 1_000_000.0
    job = storage.enqueue(NewJob("t", "[]", max_attempts=3), now=t0).job
    [a] = storage.claim(["default"], owner="A", now=t0, lease_seconds=10.0, limit=5)
    assert a.lease_token is not None
    # While A's lease runs nobody else gets the job, not even through a rescue.
    assert storage.rescue_expired(now=t0 + 9.0).total == 0
    assert storage.claim(["default"], owner="B", now=t0 + 9.0, lease_seconds=10.0) == []

    assert storage.rescue_expired(now=t0 + 10.5).requeued == (job.id,)
    [b] = storage.claim(["default"], owner="B", now=t0 + 11.0, lease_seconds=10.0)
    assert b.lease_token not in (None, a.lease_token)
    assert b.attempts == 2
    before = storage.get(job.id)

    late = t0 + 12.0
    error = JobError("ValueError", "A's late failure")
    assert storage.complete(job.id, a.lease_token, now=late, result='"from A"') is False
    late_batch = [Completion(job.id, a.lease_token, '"from A"')]
    assert storage.complete_many(late_batch, now=late) == [False]
    assert storage.fail(job.id, a.lease_token, error, now=late) is None
    assert storage.fail(job.id, a.lease_token, error, now=late, retry_at=late) is None
    assert storage.set_progress(job.id, a.lease_token, '"A"', now=late) is False
    assert storage.release(job.id, a.lease_token, now=late) is None
    assert storage.finish_cancelled(job.id, a.lease_token, now=late) is False
    assert storage.renew([(job.id, a.lease_token)], now=late, lease_seconds=10.0) == RenewResult(
        frozenset(), frozenset({job.id}), frozenset()
    )
    assert storage.get(job.id) == before  # not one field changed

    assert storage.complete(job.id, b.lease_token, now=late, result='"from B"') is True
    assert storage.complete(job.id, a.lease_token, now=late, result='"from A"') is False
    done = storage.get(job.id)
    assert done is not None
    assert (done.status, done.result, done.attempts) == (JobStatus.COMPLETED, '"from B"', 2)


class RenewFault:
    """A Storage that delegates to ``real``, except that :meth:`renew` raises
    StorageError while ``failing`` is set; counts claimed jobs and failed renewals."""

    def __init__(self, real: Storage) -> None:
        for name in dir(type(real)):
            if not name.startswith("_") and name not in ("renew", "claim", "close"):
                setattr(self, name, getattr(real, name))
        self.real = real
        self.failing = False
        self.failed_renewals = 0
        self.claimed = 0

    def renew(self, *args: Any, **kwargs: Any) -> RenewResult:
        if self.failing:
            self.failed_renewals += 1
            raise jobq.StorageError("injected: the database refused the renewal")
        return self.real.renew(*args, **kwargs)

    def claim(self, *args: Any, **kwargs: Any) -> list[jobq.Job]:
        jobs = self.real.claim(*args, **kwargs)
        self.claimed += len(jobs)
        return jobs

    def close(self) -> None:
        """The test's make_queue closes the real storage."""


def test_a_pool_that_cannot_renew_its_leases_takes_no_more_work(make_queue: MakeQueue) -> None:
    fault = RenewFault(make_queue().storage)
    assert isinstance(fault, Storage)
    queue = DurableQueue(fault, lease_seconds=0.6)  # heartbeat every 0.2 s
    gate = threading.Event()
    queue.task("hold")(lambda: gate.wait(60.0))  # held until the test lets it go
    queue.task("quick")(lambda: None)
    pool = queue.start_workers(concurrency=1)  # and 1 job claimed ahead (prefetch)
    try:
        held = queue.enqueue("hold")
        eventually(lambda: bool(pool.running()))
        fault.failing = True
        eventually(lambda: fault.failed_renewals >= 1)
        claimed = fault.claimed
        waiting = [queue.enqueue("quick").id for _ in range(3)]  # a healthy pool claims one
        # It must claim nothing meanwhile. Each failed renewal is one pass of the pool's
        # dispatcher, which claims after renewing: wait for three more (the last two
        # passes began after the enqueues, the first of them has ended) and for the
        # held job's lease to lapse, then look.
        renewals = fault.failed_renewals
        lapses_at = queue.get(held.id).lease_expires_at
        assert lapses_at is not None
        # The pool waits longer after each failure, up to 5 s (every wake-up, e.g. an
        # enqueue, retries sooner and so counts one more): three more can take 15 s,
        # while the held job must still be running (it would need no renewal once done).
        eventually(
            lambda: fault.failed_renewals >= renewals + 3 and queue.clock.now() > lapses_at,
            timeout=25.0,
        )
        assert fault.failed_renewals >= 3, "the pool stopped trying to renew"
        assert fault.claimed == claimed
        assert [queue.get(i).status for i in waiting] == [JobStatus.PENDING] * 3

        fault.failing = False  # the database is back: work resumes
        gate.set()
        eventually(
            lambda: all(queue.get(i).status is JobStatus.COMPLETED for i in [held.id, *waiting])
        )
        assert queue.get(held.id).attempts == 1  # its lapsed lease was renewed, not rescued
    finally:
        gate.set()
        assert pool.stop(timeout=10.0)


# -- 4. WAL growth behind a long reader -----------------------------------------------------


def _wal_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_wal_grows_behind_an_open_reader_and_shrinks_after_it(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    limit = 256 * 1024
    # sqlite3, as the reader: two SQLite libraries in one process ignore each other's locks
    storage = SQLiteStorage(path, driver="sqlite3", journal_size_limit=limit)
    batch = [NewJob("t", json.dumps("x" * 2000))] * 250  # about 0.6 MB of WAL a batch
    now = 1_000_000.0
    try:
        storage.enqueue_many(batch, now=now)
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM jobs").fetchone() == (250,)
        for _ in range(16):  # past the automatic checkpoint at 1,000 pages (4 MB)
            storage.enqueue_many(batch, now=now)
        grown = _wal_size(path)
        # The reader's snapshot pins the WAL: checkpoints cannot start it over.
        assert grown > 8 * 1024 * 1024
        assert reader.execute("SELECT count(*) FROM jobs").fetchone() == (250,)
        reader.execute("COMMIT")
        reader.close()

        # Automatic: the next checkpoint completes, the next write starts the WAL
        # over and cuts the file to journal_size_limit.
        for _ in range(3):
            storage.enqueue_many(batch[:1], now=now)
        automatic = _wal_size(path)
        assert automatic <= limit

        for _ in range(2):
            storage.enqueue_many(batch, now=now)
        before_truncate = _wal_size(path)
        assert storage.checkpoint("TRUNCATE")[0] == 0
        truncated = _wal_size(path)
        assert truncated == 0
        print(
            f"\nWAL: {grown / 2**20:.1f} MiB behind the reader, {automatic / 1024:.0f} KiB "
            f"after it ended and writes went on (limit {limit // 1024} KiB), "
            f"{before_truncate / 1024:.0f} KiB -> {truncated} B with TRUNCATE"
        )
        assert storage.stats(now=now).queues["default"].counts[JobStatus.PENDING] == 250 * 19 + 3
    finally:
        storage.close()


# -- 5. disk trouble ----------------------------------------------------------------------------


def test_a_read_only_database_gives_a_clear_storage_error_and_stays_intact(
    shared_dir: Path,
) -> None:
    data = shared_dir / "data"
    data.mkdir()
    db = data / "jobs.db"
    with contextlib.closing(DurableQueue(db)) as queue:
        queue.task("pad")(len)
        ids = [queue.enqueue("pad", "x").id for _ in range(5)]
    assert not db.with_name("jobs.db-wal").exists()  # the last close checkpointed
    db.chmod(0o444)
    data.chmod(0o555)
    answers = shared_dir / "answers"
    answers.mkdir(mode=0o777)
    answers.chmod(0o777)
    as_nobody = os.geteuid() == 0  # root ignores file permissions
    result = run_child("readonly", answers / "ro.json", db=str(db), as_nobody=as_nobody)
    print(f"\nread-only database ({'as nobody' if as_nobody else 'as ourselves'}): {result}")
    assert result["uid"] != 0
    assert result["error"] is not None, "a write to a read-only database succeeded"
    assert result["error"]["is_storage_error"], result
    message = result["error"]["message"]
    assert str(db) in message, message
    assert "readonly" in message or "unable to open" in message or "read-only" in message, message

    data.chmod(0o755)
    db.chmod(0o644)
    with contextlib.closing(DurableQueue(db)) as queue:
        assert sorted(job.id for job in queue.list()) == ids
    assert _integrity(db) == ["ok"]


def _integrity(db: Path) -> list[str]:

    with contextlib.closing(sqlite3.connect(db)) as conn:
        return [row[0] for row in conn.execute("PRAGMA integrity_check")]


def test_a_full_disk_fails_enqueue_clearly_loses_nothing_and_recovers(tmp_path: Path) -> None:
    db = tmp_path / "full.db"
    DurableQueue(db).close()
    size = db.stat().st_size
    limit = size + 1024 * 1024  # the WAL (each commit adds a few pages) may reach 1 MiB
    full = run_child("fill", tmp_path / "fill.json", db=str(db), limit=limit, max_jobs=5000)
    accepted, error = full["accepted"], full["error"]
    print(f"\nfull disk at {limit} bytes: {len(accepted)} jobs accepted, then {error}")
    assert error is not None, "the file-size limit was never reached"
    assert 20 < len(accepted) < 5000
    assert error["is_storage_error"], error
    # EFBIG comes out of SQLite as a write I/O error (ENOSPC would say "disk is full").
    assert "disk I/O error" in error["message"] or "full" in error["message"], error["message"]
    assert "is the disk full, or a file size limit reached?" in error["message"]
    assert str(db) in error["message"]

    with contextlib.closing(DurableQueue(db)) as queue:  # every accepted job is there, and no other
        stored = [job.id for job in queue.list(limit=10_000)]
    assert stored == accepted
    assert _integrity(db) == ["ok"]

    again = run_child("work", tmp_path / "work.json", db=str(db), count=10)
    assert again["completed"] == 10
    assert again["ran"] == len(accepted) + 10  # the jobs of before the trouble ran too
    assert _integrity(db) == ["ok"]
