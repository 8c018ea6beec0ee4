"""Write contention on one SQLite file: no "database is locked" reaches a caller.

``python stress/contention.py`` runs, for ``--duration`` seconds (default 60):
``--processes`` worker processes of ``--threads`` threads, one process
enqueueing jobs one by one as fast as it can, and one process reading
``queue.stats()`` every 100 ms. Every exception that reaches a caller is
counted: the enqueuer's and the reader's calls, and the worker pools' failed
database operations (which jobq logs at ERROR before retrying).

It runs twice: with ``BEGIN IMMEDIATE`` write transactions (jobq's way; the
promise is 0 errors), then with ``BEGIN DEFERRED`` (each child sets
``jobq.storage.sqlite.driver.Connection.BEGIN_WRITE``), which upgrades a read
lock mid-transaction and must produce "database is locked" errors: proof that
the first run could have failed. ``--mode`` runs one of the two only. Exits 1
if IMMEDIATE had errors or DEFERRED had none.

``tests/integration/test_reliability.py`` runs a short version through :func:`run`.
Child mode: ``python stress/contention.py --child '<json>'``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from jobq import DurableQueue  # noqa: E402
from jobq.storage.sqlite import driver as _sqlite_driver  # noqa: E402

HARD_LIMIT = 900.0
"""Seconds after which a child gives up waiting for the stop file."""


# -- children --------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if exc.__cause__ is not None:
        text += f" (from {type(exc.__cause__).__name__})"
    return text[:200]


class _Errors(logging.Handler):
    """Counts what jobq logs at ERROR (a pool's failed database operation), by its
    exception."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        self.counts[_describe(exc) if exc else record.getMessage()[:200]] += 1


def child(config: dict[str, Any]) -> int:
    """One process of the run: ``role`` is ``worker``, ``enqueue`` or ``stats``."""
    if config["begin"] != _sqlite_driver.Connection.BEGIN_WRITE:
        _sqlite_driver.Connection.BEGIN_WRITE = config["begin"]
    folder = Path(config["dir"])
    errors = _Errors()
    logging.getLogger("jobq").addHandler(errors)
    calls = 0
    failed: Counter[str] = Counter()
    queue = DurableQueue(config["db"], lease_seconds=30.0, poll_interval=0.01)
    queue.task("noop", max_attempts=1000)(lambda n: n)
    (folder / f"ready-{config['name']}").touch()
    while not (folder / "go").exists():
        time.sleep(0.005)
    end = time.monotonic() + float(config["duration"])
    if config["role"] == "worker":
        pool = queue.start_workers(concurrency=int(config["threads"]))
        deadline = time.monotonic() + HARD_LIMIT
        while not (folder / "stop").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        pool.stop(timeout=10.0)
    else:
        task = queue.get_task("noop")
        while time.monotonic() < end:
            try:
                if config["role"] == "enqueue":
                    task.enqueue(calls)
                else:
                    queue.stats()
                    time.sleep(0.1)
            except Exception as exc:  # counted: this is what the run measures
                failed[_describe(exc)] += 1
            calls += 1
    queue.close()
    failed.update(errors.counts)
    result = {"role": config["role"], "calls": calls, "errors": dict(failed)}
    path = folder / f"result-{config['name']}.json"
    path.with_suffix(".partial").write_text(json.dumps(result))
    path.with_suffix(".partial").replace(path)
    return 0


# -- the run ---------------------------------------------------------------------------


@dataclass
class Figures:
    """What one contention run measured."""

    begin: str
    duration: float
    enqueued: int = 0
    stats_reads: int = 0
    completed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    by_role: Counter[str] = field(default_factory=Counter)
    integrity: str = "ok"
    problems: list[str] = field(default_factory=list)

    @property
    def total_errors(self) -> int:
        return sum(self.errors.values())

    @property
    def locked_errors(self) -> int:
        """Errors that are "database is locked"/busy, OperationalError or StorageError."""
        words = ("locked", "busy", "OperationalError", "StorageError")
        return sum(n for text, n in self.errors.items() if any(w in text for w in words))

    def table(self) -> str:
        rows = [
            ("write transactions", self.begin),
            ("duration (s)", f"{self.duration:g}"),
            ("jobs enqueued", self.enqueued),
            ("jobs completed", self.completed),
            ("stats() reads", self.stats_reads),
            ("errors reaching callers", self.total_errors),
            ("  locked / OperationalError / StorageError", self.locked_errors),
            ("  by caller", dict(self.by_role) or "-"),
            ("integrity_check", self.integrity),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        lines += [f"  {n:6d} x {text}" for text, n in self.errors.most_common(5)]
        return "\n".join(lines + [f"FAILED: {p}" for p in self.problems])


def run(
    db: str,
    folder: Path,
    *,
    begin: str = "BEGIN IMMEDIATE",
    processes: int = 4,
    threads: int = 4,
    duration: float = 60.0,
) -> Figures:
    """One run on the SQLite file ``db`` with files in ``folder`` (which must be
    empty); returns the figures."""
    figures = Figures(begin, duration)
    folder.mkdir(parents=True, exist_ok=True)
    base = {"db": db, "dir": str(folder), "begin": begin, "threads": threads, "duration": duration}
    roles = [("worker", f"w{i}") for i in range(processes)] + [
        ("enqueue", "enq"),
        ("stats", "reader"),
    ]
    DurableQueue(db).close()  # create the file once, before the children race to
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for role, name in roles:
            with open(folder / f"{name}.log", "wb") as log:
                procs[name] = subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        json.dumps({**base, "role": role, "name": name}),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=ROOT,
                )
        deadline = time.monotonic() + 60.0
        while not all((folder / f"ready-{name}").exists() for _, name in roles):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs.values()):
                raise RuntimeError("children did not start: " + _logs(folder, roles))
            time.sleep(0.01)
        (folder / "go").touch()
        for name in ("enq", "reader"):
            procs[name].wait(timeout=duration + 60.0)
        time.sleep(1.0)  # the workers take what the enqueuer left
        (folder / "stop").touch()
        for proc in procs.values():
            proc.wait(timeout=60.0)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait()
    codes = {name: proc.returncode for name, proc in procs.items() if proc.returncode}
    if codes:
        figures.problems.append(f"children failed {codes}: " + _logs(folder, roles))
    for role, name in roles:
        path = folder / f"result-{name}.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        if role == "enqueue":
            figures.enqueued = result["calls"] - sum(result["errors"].values())
        elif role == "stats":
            figures.stats_reads = result["calls"]
        figures.errors.update(result["errors"])
        figures.by_role[role] += sum(result["errors"].values())
    with contextlib.closing(sqlite3.connect(db)) as conn:
        figures.integrity = ", ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
        figures.completed = conn.execute(
            "SELECT count(*) FROM jobs WHERE status = 'completed'"
        ).fetchone()[0]
    if figures.integrity != "ok":
        figures.problems.append(f"integrity_check: {figures.integrity}")
    return figures


def _logs(folder: Path, roles: list[tuple[str, str]]) -> str:
    return "\n".join(
        f"--- {name}\n{(folder / f'{name}.log').read_text(errors='replace')[-2000:]}"
        for _, name in roles
        if (folder / f"{name}.log").exists()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per run")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--mode", choices=["both", "immediate", "deferred"], default="both")
    args = parser.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    status = 0
    modes = ["immediate", "deferred"] if args.mode == "both" else [args.mode]
    for mode in modes:
        with tempfile.TemporaryDirectory(prefix=f"jobq-contention-{mode}-") as tmp:
            figures = run(
                str(Path(tmp) / "jobs.db"),
                Path(tmp) / "run",
                begin=f"BEGIN {mode.upper()}",
                processes=args.processes,
                threads=args.threads,
                duration=args.duration,
            )
        print(figures.table(), end="\n\n", flush=True)
        broken = figures.problems or (
            figures.total_errors if mode == "immediate" else not figures.locked_errors
        )
        if broken:
            print(f"CHECK FAILED for {mode}", flush=True)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
