"""Benchmark jobq on PostgreSQL where the backlog is large: processing with 10,000,
100,000 and 1,000,000 pending jobs (one queue and three), dead row versions before
and after a run, one-by-one enqueue against a raw insert-and-commit, and pickup
latency from another process; Procrastinate in the same run where it applies.

Run from the repository root (the ``postgres`` and ``bench`` extras, PostgreSQL's
server programs)::

    python benchmarks/bench_pg_backlog.py            # full run, a few minutes
    python benchmarks/bench_pg_backlog.py --quick    # 10k and 100k only, about a minute
    python benchmarks/bench_pg_backlog.py --url postgresql://me@db/postgres

The server is a throwaway one with default settings, as in ``bench_postgres.py``
(whose server, contestants and pickup measurement this file reuses). Each
measurement gets a fresh database.

- **Backlog**: the pending jobs are written by one ``INSERT ... SELECT`` from
  ``generate_series`` (the rows jobq's enqueue writes, due now, spread evenly over
  the queues), then ``ANALYZE``; a pool of 4 threads (``queue.start_workers``) on
  those queues runs the first ``--slice`` jobs and the rate is taken from the pool's
  start to the last of them. "main's claim" runs the same with the claim statement
  of jobq 0.x before this change (one ``queue = ANY(...)`` scan, sorted), patched in.
  Procrastinate's rows go in the same way (its ``procrastinate_jobs`` table, its
  triggers running), its worker with ``concurrency=4``.
- **Dead rows**: ``pg_stat_user_tables.n_dead_tup`` of ``jobq_jobs`` after the
  backlog is written and after the whole largest backlog ran (``--drain``, the
  default of the full run), and how many times autovacuum ran meanwhile.
- **Enqueue**: ``task.enqueue(i)`` one by one against raw psycopg (one autocommit
  ``INSERT`` of the same row into the same table, on one connection) and
  Procrastinate's ``defer``, interleaved rounds, medians.
- **Pickup**: ``bench_postgres.pickup``: another process enqueues with 5-15 ms gaps.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass

import bench_postgres as bp
import psycopg
from psycopg import sql as pgsql

import jobq
from jobq.storage.postgres import PostgresStorage
from jobq.storage.postgres import sql as jobq_sql

QUEUES_SEVERAL = ("default", "mail", "reports")
THREADS = 4
ENQUEUE_ROUNDS = 9
MAIN_CLAIM = (
    "WITH c AS MATERIALIZED (SELECT id FROM jobq_jobs j WHERE status = 'pending' "
    f"AND queue = ANY(%(queues)s::text[]) AND run_at <= {jobq_sql.NOW} AND NOT EXISTS "
    "(SELECT 1 FROM jobq_paused_queues p WHERE p.queue = j.queue) "
    "ORDER BY priority DESC, run_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
    + jobq_sql.CLAIM[jobq_sql.CLAIM.index("UPDATE jobq_jobs j") :]
)
"""The claim as jobq sent it before this change, for the "main's claim" column."""
FILL_JOBQ = (
    "INSERT INTO jobq_jobs (queue, name, payload, priority, status, max_attempts, run_at, "
    "created_at, updated_at) SELECT (%(queues)s::text[])[1 + g %% %(n)s], %(task)s, "
    """'{"args":[' || g || '],"kwargs":{}}', 0, 'pending', 3, t - 1 + g * 1e-7, t, t """
    "FROM generate_series(0, %(count)s - 1) AS g, "
    "(SELECT extract(epoch FROM now())::float8 AS t) AS now"
)
FILL_PROCRASTINATE = (
    "INSERT INTO procrastinate_jobs (queue_name, task_name, args) "
    "SELECT (%(queues)s::text[])[1 + g %% %(n)s], %(task)s, jsonb_build_object('i', g) "
    "FROM generate_series(0, %(count)s - 1) AS g"
)
DEAD = (
    "SELECT n_dead_tup, n_live_tup, autovacuum_count, vacuum_count FROM pg_stat_user_tables "
    "WHERE relname = 'jobq_jobs'"
)


@dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...]
    slice: int  # jobs measured out of each backlog, per round
    main_slice: int  # jobs measured with main's claim
    peer_slice: int  # jobs measured for Procrastinate
    main_sizes: tuple[int, ...]  # backlogs measured with main's claim too
    enqueues: int  # per enqueue round
    rounds: int
    samples: int  # pickup samples
    drain: bool  # run the whole largest backlog for the dead rows


FULL = Settings(
    (10_000, 100_000, 1_000_000), 5_000, 2_000, 1_000, (10_000, 100_000), 200, 3, 300, True
)
SMOKE = Settings((1_000, 3_000), 300, 100, 100, (1_000, 3_000), 20, 1, 10, True)
"""Tiny sizes, to check the script runs end to end (its test)."""
QUICK = Settings((10_000, 100_000), 3_000, 1_000, 500, (10_000, 100_000), 200, 3, 60, False)


class Counter:
    """Jobs started, and the time the n-th one did."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.count = 0
        self.reached = threading.Event()
        self.at = 0.0
        self._lock = threading.Lock()

    def started(self, index: int) -> None:
        with self._lock:
            self.count += 1
            if self.count == self.wanted:
                self.at = time.perf_counter()
                self.reached.set()


@contextmanager
def claim_statement(text: str) -> Iterator[None]:
    kept = jobq_sql.CLAIM
    jobq_sql.CLAIM = text
    try:
        yield
    finally:
        jobq_sql.CLAIM = kept


def dead_rows(url: str) -> tuple[int, int, int]:
    """(dead rows, autovacuum runs, live rows) of jobq_jobs, after the statistics settle."""
    time.sleep(1.1)  # backends report their counts at most once a second
    with psycopg.connect(url) as conn:
        row = conn.execute(DEAD).fetchone()
    assert row is not None
    return int(row[0]), int(row[2]), int(row[1])


class Backlog:
    """One database holding ``size`` pending jobs (plus one slice per round, so at
    least ``size`` are pending during each measured slice)."""

    def __init__(self, url: str, size: int, queues: tuple[str, ...], extra: int) -> None:
        self.url, self.size, self.queues = url, size, queues
        PostgresStorage(url).close()
        with psycopg.connect(url, autocommit=True) as conn:
            params = {"queues": list(queues), "n": len(queues), "task": bp.TASK}
            conn.execute(FILL_JOBQ, {**params, "count": size + extra})
            conn.execute("ANALYZE jobq_jobs")
        self.left = size + extra
        self.dead_at_fill = dead_rows(url)[0]

    def process(self, count: int) -> float:
        """Jobs/s of a fresh 4-thread pool from its start to the ``count``-th job started."""
        counter = Counter(count)
        queue = jobq.DurableQueue(self.url)
        queue.task(bp.TASK, queue=self.queues[0])(lambda i: counter.started(i))
        started = time.perf_counter()
        pool = queue.start_workers(concurrency=THREADS, queues=list(self.queues))
        try:
            if not counter.reached.wait(60.0 + count / 100):
                raise RuntimeError(f"jobq: {counter.count} of {count} jobs ran")
        finally:
            pool.stop(timeout=30.0)
            queue.close()
        self.left -= counter.count
        return count / (counter.at - started)


def procrastinate_backlog(
    server: bp.Server, size: int, queues: tuple[str, ...], measured: int
) -> float:
    with server.database() as url:
        peer = bp.ProcrastinateContestant(url)
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                params = {"queues": list(queues), "n": len(queues), "task": bp.TASK, "count": size}
                conn.execute(FILL_PROCRASTINATE, params)
                conn.execute("ANALYZE procrastinate_jobs")
            started = time.perf_counter()
            peer.start()
            if not peer.recorder.wait_count(measured, 60.0 + measured / 20):
                raise RuntimeError(f"procrastinate: {len(peer.recorder.starts)} jobs ran")
            return measured / (time.perf_counter() - started)
        finally:
            peer.close()


def enqueue_rates(workspace: bp.Workspace, settings: Settings) -> dict[str, list[float]]:
    """µs per one-by-one enqueue, interleaved rounds."""
    columns = ("jobq-pg", "raw", "procrastinate")
    rates: dict[str, list[float]] = {c: [] for c in columns}
    with ExitStack() as stack:
        made = {c: stack.enter_context(workspace.contestant(c)) for c in columns}
        for c in made.values():
            for warm in range(20):
                c.enqueue(-1 - warm)
        # Short rounds in rotating order, so a busy moment of the machine hits all three.
        for index in range(ENQUEUE_ROUNDS):
            for column in columns[index % 3 :] + columns[: index % 3]:
                began = time.perf_counter()
                for i in range(settings.enqueues):
                    made[column].enqueue(index * settings.enqueues + i)
                rates[column].append((time.perf_counter() - began) / settings.enqueues * 1e6)
    return rates


def within(value: float | None, reference: float | None, fraction: float) -> str:
    if value is None or reference is None:
        return "-"
    ratio = value / reference
    return f"{'yes' if ratio >= 1 - fraction else 'NO'} ({ratio:.2f}x)"


def processing(
    server: bp.Server, settings: Settings, label: str, queues: tuple[str, ...]
) -> tuple[dict[int, dict[str, float]], list[str]]:
    """Jobs/s over a slice of each backlog size: rounds interleaved over the sizes,
    medians; main's claim and Procrastinate once per size; then the dead rows of a
    run through the whole largest backlog."""
    rates: dict[int, dict[str, list[float]]] = {size: {} for size in settings.sizes}
    notes: list[str] = []
    with ExitStack() as stack:
        backlogs = {}
        for size in settings.sizes:
            bp.step(f"writing {size:,} pending jobs, {label}")
            url = stack.enter_context(server.database())
            backlogs[size] = Backlog(url, size, queues, settings.rounds * settings.slice)
        for index in range(settings.rounds):
            order = (
                settings.sizes[index % len(settings.sizes) :]
                + settings.sizes[: index % len(settings.sizes)]
            )
            for size in order:
                bp.step(f"round {index + 1}: jobq, {size:,} pending, {label}")
                rates[size].setdefault("jobq", []).append(backlogs[size].process(settings.slice))
        for size in settings.main_sizes:
            bp.step(f"jobq with main's claim, {size:,} pending, {label}")
            with claim_statement(MAIN_CLAIM):  # the same slice where it is fast enough
                count = settings.slice if size <= settings.sizes[0] else settings.main_slice
                rate = backlogs[size].process(count)
            rates[size]["main"] = [rate]
        biggest = backlogs[max(settings.sizes)]
        if settings.drain and label == "1 queue":
            dead_before, vacuums_before, _ = dead_rows(biggest.url)
            left = biggest.left
            bp.step(f"jobq, all {left:,} jobs left of the {biggest.size:,} backlog")
            began = time.perf_counter()
            rate = biggest.process(left)
            took = time.perf_counter() - began
            dead_after, vacuums_after, live = dead_rows(biggest.url)
            notes.append(
                f"run through the whole {biggest.size:,} backlog ({label}): {left:,} jobs in "
                f"{took:,.0f} s, {rate:,.0f} jobs/s; jobq_jobs dead rows: "
                f"{biggest.dead_at_fill:,} after the fill, {dead_before:,} before the run "
                f"(after the measured slices), {dead_after:,} after it ({live:,} live rows); "
                f"autovacuum ran {vacuums_after - vacuums_before} time(s) during it"
            )
    for size in settings.sizes:
        bp.step(f"procrastinate, {size:,} pending, {label}")
        rates[size]["peer"] = [procrastinate_backlog(server, size, queues, settings.peer_slice)]
    medians = {
        size: {k: statistics.median(v) for k, v in cell.items()} for size, cell in rates.items()
    }
    return medians, notes


def run(server: bp.Server, settings: Settings) -> None:
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    for label, queues in (("1 queue", ("default",)), ("3 queues", QUEUES_SEVERAL)):
        rates, more = processing(server, settings, label, queues)
        notes.extend(more)
        base = rates[settings.sizes[0]]["jobq"]
        for size in settings.sizes:
            cell = rates[size]
            rows.append(
                (
                    f"processing, {size:,} pending, {label} (jobs/s)",
                    bp.fmt(cell.get("main")),
                    bp.fmt(cell["jobq"]),
                    bp.fmt(cell["peer"]),
                    "within 20% of 10k",
                    within(cell["jobq"], base, 0.2),
                )
            )
    workspace = bp.Workspace(server, None)
    try:
        bp.step("enqueue one by one: jobq, raw psycopg, procrastinate")
        enqueue = {k: statistics.median(v) for k, v in enqueue_rates(workspace, settings).items()}
        rows.append(
            (
                "enqueue one by one (µs per job; raw insert-and-commit)",
                bp.fmt(enqueue["raw"]),
                bp.fmt(enqueue["jobq-pg"]),
                bp.fmt(enqueue["procrastinate"]),
                f"<= raw x 1.2 = {enqueue['raw'] * 1.2:.0f}",
                f"{'yes' if enqueue['jobq-pg'] <= enqueue['raw'] * 1.2 else 'NO'} "
                f"({enqueue['jobq-pg'] / enqueue['raw']:.2f}x raw)",
            )
        )
        results = bp.Results()
        pickup = bp.Settings(jobs=0, rounds=1, samples=settings.samples)
        for seed, column in enumerate(("jobq-pg", "procrastinate")):
            bp.step(f"pickup from another process, {column}")
            bp.pickup(workspace, column, pickup, results, seed)
        for start, table in (
            ("enqueue call", results.latency),
            ("its return", results.after_commit),
        ):
            ours, theirs = table["jobq-pg"], table["procrastinate"]
            for name, fraction in (("p50", 0.5), ("p99", 0.99)):
                p_ours, p_theirs = bp.percentile(ours, fraction), bp.percentile(theirs, fraction)
                goal = name == "p99" and start == "enqueue call"
                rows.append(
                    (
                        f"pickup {name}, another process, from the {start} (ms)",
                        "-",
                        bp.fmt(p_ours),
                        bp.fmt(p_theirs),
                        "p99 < 3 ms" if goal else "",
                        ("yes" if p_ours < 3 else "NO") if goal else "",
                    )
                )
    finally:
        workspace.close()
    print()
    header = ("workload", "before / raw", "jobq now", "Procrastinate", "goal", "met?")
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print()
    print("before: processing with main's claim statement patched in; enqueue: raw psycopg.")
    for note in notes:
        print(note)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10k and 100k only, smaller samples")
    parser.add_argument("--url", default=None, help="an existing server (may CREATE DATABASE)")
    parser.add_argument("--dir", default=None, help="where the temporary files go")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--drain", action="store_true", help="run the whole largest backlog")
    parser.add_argument(
        "--naptime",
        default=None,
        help="set the server's autovacuum_naptime first (ALTER SYSTEM), e.g. 10s",
    )
    args = parser.parse_args(argv)
    settings = SMOKE if args.smoke else QUICK if args.quick else FULL
    if args.drain:
        settings = Settings(**{**settings.__dict__, "drain": True})
    bp.logging.getLogger("procrastinate.blueprints").addFilter(
        lambda record: getattr(record, "action", None) != "app_defined_in___main__"
    )
    server_context = (
        bp.throwaway_server(args.dir) if args.url is None else bp.existing_server(args.url)
    )
    with server_context as url:
        server = bp.Server(url)
        if args.naptime is not None:
            server.admin.execute(
                pgsql.SQL("ALTER SYSTEM SET autovacuum_naptime = {}").format(
                    pgsql.Literal(args.naptime)
                )
            )
            server.admin.execute("SELECT pg_reload_conf()")
        try:
            bp.print_environment(
                bp.Settings(jobs=settings.slice, rounds=settings.rounds, samples=settings.samples),
                server,
                "throwaway, default settings" if args.url is None else "the server given",
            )
            run(server, settings)
        finally:
            server.close()
    return 0


if __name__ == "__main__":
    with suppress(BrokenPipeError):
        sys.exit(main())
