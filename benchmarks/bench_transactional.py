"""Benchmark transactional enqueue on PostgreSQL: an app transaction that inserts a
user row and enqueues its job (``queue.in_transaction``), against the same
transaction inserting an equivalent row into a plain table instead; both committed
once per iteration, on one connection.

Run from the repository root (the ``postgres``, ``bench`` and ``sqlalchemy`` extras,
PostgreSQL's server programs)::

    python benchmarks/bench_transactional.py            # about a minute
    python benchmarks/bench_transactional.py --quick    # a few seconds; checks it works
    python benchmarks/bench_transactional.py --url postgresql://me@db/postgres

The server is a throwaway one with default settings (``fsync=on``,
``synchronous_commit=on``), as in ``bench_postgres.py``, whose server handling this
file reuses; each run gets a fresh database.

Per iteration, on one connection, in one transaction, then COMMIT:

- **plain INSERT**: ``INSERT INTO users`` and ``INSERT INTO plain_jobs``, a table
  with the columns of ``jobq_jobs`` and a primary key, nothing else (no indexes,
  triggers or NOTIFY), the row given as jobq's enqueue gives it;
- **INSERT into jobq_jobs**: the same row into jobq's own table by hand (its
  indexes and counting triggers, no NOTIFY, no argument checks): what the table
  costs, apart from the enqueue path;
- **jobq enqueue**: ``INSERT INTO users`` and ``task.enqueue(user_id)`` inside
  ``with queue.in_transaction(conn)`` (a new block each iteration): the arguments
  encoded and checked, jobq's insert with its indexes, counting triggers and NOTIFY.

Two ways in: a psycopg 3 connection, and a SQLAlchemy ``Session`` (what Flask apps
hold), whose own overhead is in every column; and in bulk, 100 jobs a transaction
through ``task.enqueue_many`` against one ``INSERT ... SELECT FROM unnest(...)``.
The contestants take turns transaction by transaction; the table gives each one's
median time per transaction, and the ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import bench_postgres as bp
import psycopg

import jobq

try:
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session
except ImportError as exc:  # pragma: no cover - depends on the environment
    sys.exit(f"missing a library ({exc.name}); install with: pip install -e '.[sqlalchemy]'")

GOAL = 1.1
USERS = "CREATE TABLE users (id bigserial PRIMARY KEY, name text NOT NULL)"
PLAIN = (
    "CREATE TABLE plain_jobs (id bigserial PRIMARY KEY, queue text, name text, payload text, "
    "priority integer, status text, max_attempts integer, run_at float8, unique_key text, "
    "created_at float8, updated_at float8, expires_at float8, limit_key text)"
)
NOW = "extract(epoch from statement_timestamp())::float8"
_JOB_COLUMNS = (
    "(queue, name, payload, priority, status, max_attempts, run_at, unique_key, created_at, "
    "updated_at, expires_at, limit_key)"
)
_JOB_VALUES = f"('default', 'welcome', %s, 0, 'pending', 3, {NOW}, NULL, {NOW}, {NOW}, NULL, NULL)"
INSERT_USER = "INSERT INTO users (name) VALUES (%s) RETURNING id"
INSERT_PLAIN = f"INSERT INTO plain_jobs {_JOB_COLUMNS} VALUES {_JOB_VALUES} RETURNING id"
INSERT_RAW = f"INSERT INTO jobq_jobs {_JOB_COLUMNS} VALUES {_JOB_VALUES} RETURNING id"
"""The row jobq writes, into jobq's table (its indexes and counting triggers), by hand:
no argument checks and no NOTIFY."""
BULK = 100
_BULK_SELECT = (
    f"SELECT 'default', 'welcome', p, 0, 'pending', 3, {NOW}, NULL, {NOW}, {NOW}, NULL, NULL "
    "FROM unnest(%s::text[]) AS p"
)
BULK_PLAIN = f"INSERT INTO plain_jobs {_JOB_COLUMNS} {_BULK_SELECT}"
BULK_RAW = f"INSERT INTO jobq_jobs {_JOB_COLUMNS} {_BULK_SELECT}"


@dataclass(frozen=True)
class Settings:
    iterations: int  # transactions per round and contestant
    rounds: int


FULL = Settings(iterations=1000, rounds=7)
QUICK = Settings(iterations=100, rounds=3)
SMOKE = Settings(iterations=20, rounds=1)


def _rounds(contestants: dict[str, Callable[[int], None]], settings: Settings) -> dict[str, float]:
    """Median seconds per transaction, per contestant. The contestants take turns
    transaction by transaction (in rotating order), so that a load spike from
    elsewhere on the machine hits them alike; the median ignores the spikes."""
    times: dict[str, list[float]] = {name: [] for name in contestants}
    for body in contestants.values():  # warm caches and prepared statements
        for i in range(min(50, settings.iterations)):
            body(-i)
    order = list(contestants.items())
    clock = time.perf_counter
    for i in range(settings.rounds * settings.iterations):
        turn = i % len(order)
        for name, body in order[turn:] + order[:turn]:
            began = clock()
            body(i)
            times[name].append(clock() - began)
    return {name: statistics.median(values) for name, values in times.items()}


def with_psycopg(
    url: str, queue: jobq.DurableQueue, task: jobq.Task[Any, Any], settings: Settings
) -> dict[str, float]:
    conn = psycopg.connect(url)

    def plain(i: int) -> None:
        row = conn.execute(INSERT_USER, (f"user {i}",)).fetchone()
        assert row is not None
        conn.execute(INSERT_PLAIN, (f'{{"args":[{row[0]}],"kwargs":{{}}}}',)).fetchone()
        conn.commit()

    def raw(i: int) -> None:
        row = conn.execute(INSERT_USER, (f"user {i}",)).fetchone()
        assert row is not None
        conn.execute(INSERT_RAW, (f'{{"args":[{row[0]}],"kwargs":{{}}}}',)).fetchone()
        conn.commit()

    def enqueue(i: int) -> None:
        row = conn.execute(INSERT_USER, (f"user {i}",)).fetchone()
        assert row is not None
        with queue.in_transaction(conn):
            task.enqueue(row[0])
        conn.commit()

    try:
        return _rounds({"plain": plain, "raw": raw, "jobq": enqueue}, settings)
    finally:
        conn.close()


def with_session(
    url: str, queue: jobq.DurableQueue, task: jobq.Task[Any, Any], settings: Settings
) -> dict[str, float]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    session = Session(engine)
    user = text("INSERT INTO users (name) VALUES (:name) RETURNING id")
    other = text(INSERT_PLAIN.replace("%s", ":payload"))
    by_hand = text(INSERT_RAW.replace("%s", ":payload"))

    def plain(i: int) -> None:
        user_id = session.execute(user, {"name": f"user {i}"}).scalar_one()
        session.execute(other, {"payload": f'{{"args":[{user_id}],"kwargs":{{}}}}'}).scalar_one()
        session.commit()

    def raw(i: int) -> None:
        user_id = session.execute(user, {"name": f"user {i}"}).scalar_one()
        session.execute(by_hand, {"payload": f'{{"args":[{user_id}],"kwargs":{{}}}}'}).scalar_one()
        session.commit()

    def enqueue(i: int) -> None:
        user_id = session.execute(user, {"name": f"user {i}"}).scalar_one()
        with queue.in_transaction(session):
            task.enqueue(user_id)
        session.commit()

    try:
        return _rounds({"plain": plain, "raw": raw, "jobq": enqueue}, settings)
    finally:
        session.close()
        engine.dispose()


def with_psycopg_bulk(
    url: str, queue: jobq.DurableQueue, task: jobq.Task[Any, Any], settings: Settings
) -> dict[str, float]:
    conn = psycopg.connect(url)

    def rows(user_id: int) -> list[str]:
        return [f'{{"args":[{user_id}, {n}],"kwargs":{{}}}}' for n in range(BULK)]

    def plain(i: int) -> None:
        row = conn.execute(INSERT_USER, (f"user {i}",)).fetchone()
        assert row is not None
        conn.execute(BULK_PLAIN, (rows(row[0]),))
        conn.commit()

    def raw(i: int) -> None:
        row = conn.execute(INSERT_USER, (f"user {i}",)).fetchone()
        assert row is not None
        conn.execute(BULK_RAW, (rows(row[0]),))
        conn.commit()

    def enqueue(i: int) -> None:
        row = conn.execute(INSERT_USER, (f"user {i}",)).fetchone()
        assert row is not None
        with queue.in_transaction(conn):
            task.enqueue_many([(row[0], n) for n in range(BULK)])
        conn.commit()

    bulk = Settings(max(5, settings.iterations // 10), settings.rounds)
    try:
        return _rounds({"plain": plain, "raw": raw, "jobq": enqueue}, bulk)
    finally:
        conn.close()


def run(server: bp.Server, settings: Settings) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for label, measure, goal in (
        ("user row + job, one transaction, psycopg connection", with_psycopg, True),
        ("user row + job, one transaction, SQLAlchemy Session", with_session, True),
        (f"user row + {BULK} jobs (enqueue_many), psycopg connection", with_psycopg_bulk, False),
    ):
        with server.database() as url:
            bp.step(f"{label}: {settings.rounds} rounds of {settings.iterations} transactions")
            queue = jobq.DurableQueue(url)
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute(USERS)
                admin.execute(PLAIN)
            task = queue.task("welcome")(lambda user_id, n=0: None)
            try:
                figures = measure(url, queue, task, settings)
            finally:
                queue.close()
        ratio = figures["jobq"] / figures["plain"]
        rows.append(
            (
                f"{label} (us/txn)",
                f"{figures['plain'] * 1e6:.0f}",
                f"{figures['raw'] * 1e6:.0f}",
                f"{figures['jobq'] * 1e6:.0f}",
                f"{ratio:.3f}x",
                f"{figures['jobq'] / figures['raw']:.3f}x",
                f"<= {GOAL}x" if goal else "",
                ("yes" if ratio <= GOAL else "NO") if goal else "",
            )
        )
    return rows


def print_table(rows: list[tuple[str, ...]]) -> None:
    header = (
        "workload",
        "plain INSERT",
        "INSERT into jobq_jobs",
        "jobq enqueue",
        "ratio to plain",
        "ratio to jobq_jobs",
        "goal",
        "met?",
    )
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    print()
    for row in (header, tuple("-" * w for w in widths), *rows):
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(
        "plain INSERT: the row into a table with jobq_jobs' columns and a primary key only; "
        "INSERT into jobq_jobs: the same row into jobq's table by hand (its indexes and "
        "triggers, no NOTIFY); goal: jobq enqueue within 1.1x of plain INSERT."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short rounds, to check it works")
    parser.add_argument("--url", default=None, help="an existing server (may CREATE DATABASE)")
    parser.add_argument("--dir", default=None, help="where the temporary files go")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = SMOKE if args.smoke else QUICK if args.quick else FULL
    server_context = (
        bp.throwaway_server(args.dir) if args.url is None else bp.existing_server(args.url)
    )
    with server_context as url:
        server = bp.Server(url)
        try:
            print(
                f"python {platform.python_version()} | jobq {metadata.version('jobq')} | "
                f"psycopg {metadata.version('psycopg')} | "
                f"SQLAlchemy {metadata.version('SQLAlchemy')}"
            )
            print(
                f"{platform.platform()} | {os.cpu_count()} CPUs | PostgreSQL "
                f"{server.setting('server_version')}, fsync={server.setting('fsync')}, "
                f"synchronous_commit={server.setting('synchronous_commit')} | "
                f"{settings.rounds} rounds of {settings.iterations} transactions"
            )
            print_table(run(server, settings))
        finally:
            server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
