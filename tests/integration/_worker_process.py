"""A real process for tests/integration/test_worker_processes.py:
``python _worker_process.py '<json>'``.

The JSON config names a ``mode`` and a shared folder ``dir``; the child talks to
the test through files only (no pipes to fill up or to block on):

- ``workers``: start a pool, touch ``ready-<name>-<pid>``, run until the file
  ``stop`` appears, stop the pool. Exit 2 if jobq logged an error (a database
  operation that failed inside the pool), 3 if ``stop`` never came. Each rescue
  sweep of the pool appends a line to ``sweeps-<pid>.txt`` (see :func:`read_sweeps`).
- ``enqueue``: enqueue ``record`` jobs one by one (``count`` of them, or as many
  as possible for ``duration`` seconds); write their ids to ``ids-<name>.json``.
- ``stats``: call ``queue.stats()`` every 50 ms for ``duration`` seconds.
- ``fork``: enqueue and run a job, ``os.fork()``, then both sides use the same
  DurableQueue object; writes ``fork-result.json``.

Handlers append ``event job_id pid attempt time`` lines to ``ledger-<pid>.txt``,
a per-process file outside the queue. Any uncaught exception exits non-zero with
its traceback on stderr; every wait here has a deadline.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

# Run as a script: make the repository's folder importable, as pytest does.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

import jobq
from tests.helpers import open_location

HARD_LIMIT = 90.0
"""Seconds after which any child gives up on its own (the test's timeout is 120 s)."""

_ledger_lock = threading.Lock()


def ledger_path(folder: Path, pid: int) -> Path:
    return folder / f"ledger-{pid}.txt"


def write_ledger(folder: Path, event: str) -> None:
    job = jobq.current_job()
    line = f"{event} {job.id} {os.getpid()} {job.attempt} {time.time():.6f}\n"
    with _ledger_lock, open(ledger_path(folder, os.getpid()), "a") as file:
        file.write(line)
        file.flush()


def read_ledgers(folder: Path) -> list[tuple[str, int, int, int, float]]:
    """Every ledger line of every process, in time order: (event, job id, pid,
    attempt, time)."""
    entries = []
    for path in sorted(folder.glob("ledger-*.txt")):
        for line in path.read_text().splitlines():
            event, job_id, pid, attempt, when = line.split()
            entries.append((event, int(job_id), int(pid), int(attempt), float(when)))
    return sorted(entries, key=lambda entry: entry[4])


def log_sweeps(queue: jobq.DurableQueue, folder: Path) -> None:
    """Record every rescue sweep of ``queue``'s pools, empty ones too: the wall
    time it began and ended, and the ids of the jobs it released."""
    rescue = queue.storage.rescue_expired

    def logged_rescue(*, now: float, limit: int = 1000) -> Any:
        began = time.time()
        result = rescue(now=now, limit=limit)
        ids = ",".join(str(i) for i in result.requeued + result.failed + result.cancelled)
        with open(folder / f"sweeps-{os.getpid()}.txt", "a") as file:
            file.write(f"sweep {began:.6f} {time.time():.6f} {ids or '-'}\n")
        return result

    queue.storage.rescue_expired = logged_rescue  # type: ignore[method-assign]


def read_sweeps(folder: Path, pid: int) -> list[tuple[float, float, list[int]]]:
    """The rescue sweeps process ``pid`` has finished: (began, ended, released ids)."""
    path = folder / f"sweeps-{pid}.txt"
    sweeps = []
    text = path.read_text() if path.exists() else ""
    for line in text.split("\n")[:-1]:  # a line being written waits until it is whole
        _, began, ended, released = line.split()
        ids = [] if released == "-" else [int(i) for i in released.split(",")]
        sweeps.append((float(began), float(ended), ids))
    return sweeps


def register_tasks(queue: jobq.DurableQueue, config: dict[str, Any]) -> None:
    """The tasks every process registers (the test process too, to enqueue them)."""
    folder = Path(config["dir"])
    job_sleep = float(config.get("job_sleep", 0.0))
    block = bool(config.get("block", False))
    deadline = time.monotonic() + HARD_LIMIT

    @queue.task("record", max_attempts=int(config.get("record_attempts", 3)))
    def record(n: int) -> int:
        write_ledger(folder, "run")
        if job_sleep:
            time.sleep(job_sleep)
        return n

    @queue.task("hang", max_attempts=3)
    def hang() -> None:
        write_ledger(folder, "start")
        while block and time.monotonic() < deadline:  # until the test kills us
            time.sleep(0.05)
        write_ledger(folder, "done")

    @queue.task("poison", max_attempts=2)
    def poison() -> None:
        write_ledger(folder, "start")
        os.kill(os.getpid(), signal.SIGKILL)

    if config.get("limited"):  # only where asked: limits change how every claim runs
        register_limited_tasks(queue, config)


def register_limited_tasks(queue: jobq.DurableQueue, config: dict[str, Any]) -> None:
    """Tasks with deployment-wide limits, and a schedule firing every second."""
    folder = Path(config["dir"])

    @queue.task("report", concurrency_limit=2)
    def report() -> None:
        write_ledger(folder, "start")
        time.sleep(0.05)
        write_ledger(folder, "done")

    @queue.task("webhook", rate_limit="5/s")
    def webhook() -> None:
        write_ledger(folder, "start")

    @queue.task("sync", concurrency_limit=1, limit_key="account")
    def sync(account: str) -> None:  # one at a time per account
        write_ledger(folder, "start")
        time.sleep(0.05)
        write_ledger(folder, "done")

    @queue.task("tick")
    def tick() -> None:
        write_ledger(folder, "tick")

    queue.schedule(tick, every=1, name="every-second")


def open_queue(config: dict[str, Any]) -> jobq.DurableQueue:
    queue = jobq.DurableQueue(
        open_location(config["db"]),
        lease_seconds=float(config.get("lease", 30.0)),
        poll_interval=float(config.get("poll", 0.01)),
    )
    register_tasks(queue, config)
    return queue


class _Errors(logging.Handler):
    """Keeps what jobq logs at ERROR or above (e.g. a failed database operation)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.messages.append(text)


def run_workers(config: dict[str, Any]) -> int:
    folder = Path(config["dir"])
    errors = _Errors()
    logging.getLogger("jobq").addHandler(errors)
    queue = open_queue(config)
    log_sweeps(queue, folder)
    pool = queue.start_workers(concurrency=int(config.get("concurrency", 2)))
    (folder / f"ready-{config['name']}-{os.getpid()}").touch()
    deadline = time.monotonic() + HARD_LIMIT
    while not (folder / "stop").exists():
        if time.monotonic() > deadline:
            print("no stop file before the deadline", file=sys.stderr)
            return 3
        time.sleep(0.02)
    finished = pool.stop(timeout=10.0)
    queue.close()
    if not finished:
        print("jobs were still running when the pool stopped", file=sys.stderr)
        return 4
    if errors.messages:
        print("jobq logged errors:\n" + "\n".join(errors.messages), file=sys.stderr)
        return 2
    return 0


def write_json(path: Path, value: Any) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(value))
    partial.replace(path)  # readers never see half a file


def run_enqueue(config: dict[str, Any]) -> int:
    queue = open_queue(config)
    record = queue.get_task("record")
    ids: list[int] = []
    gap = float(config.get("gap", 0.0))
    if "duration" in config:
        end = time.monotonic() + float(config["duration"])
        while time.monotonic() < end:
            ids.append(record.enqueue(len(ids)).id)
    else:
        for n in range(int(config["count"])):
            ids.append(record.enqueue(n).id)
            if gap:
                time.sleep(gap)
    queue.close()
    write_json(Path(config["dir"]) / f"ids-{config['name']}.json", ids)
    return 0


def run_stats(config: dict[str, Any]) -> int:
    queue = open_queue(config)
    reads = 0
    end = time.monotonic() + float(config["duration"])
    while time.monotonic() < end:
        queue.stats()
        reads += 1
        time.sleep(0.05)
    queue.close()
    write_json(Path(config["dir"]) / f"stats-{config['name']}.json", {"reads": reads})
    return 0


def _fork_side(queue: jobq.DurableQueue, own_queue: str, first: int, total: int) -> None:
    """Enqueue ``record`` jobs into ``own_queue`` one by one and run that queue's
    jobs with a pool until ``total`` of them are completed."""
    record = queue.get_task("record").options(queue=own_queue)
    for n in range(first, first + 100):
        record.enqueue(n)
    pool = queue.start_workers(concurrency=2, queues=[own_queue])
    try:
        deadline = time.monotonic() + 30.0
        while True:
            counts = queue.stats().queues[own_queue].counts
            if counts[jobq.JobStatus.COMPLETED] == total:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{own_queue}: not all jobs completed: {counts}")
            time.sleep(0.02)
    finally:
        assert pool.stop(timeout=10.0)


def run_fork(config: dict[str, Any]) -> int:
    folder = Path(config["dir"])
    queue = open_queue(config)
    record = queue.get_task("record")
    # Before the fork: this process has opened the file, written, claimed and completed.
    record.options(queue="before").enqueue(-1)
    assert queue.run_until_empty(queues=["before"]) == 1
    record.options(queue="child").enqueue(0)  # written before the fork, run by the child

    pid = os.fork()
    if pid == 0:  # the forked child: the same DurableQueue object, inherited
        code = 1
        try:
            _fork_side(queue, "child", 1, 101)
            queue.close()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)

    (folder / "forked-child.pid").write_text(str(pid))
    problems: list[str] = []
    try:
        _fork_side(queue, "parent", 1000, 100)
    except BaseException:
        problems.append(traceback.format_exc())
    deadline = time.monotonic() + 40.0
    status: int | None = None
    while status is None:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = raw
        elif time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            problems.append("the forked child did not finish in time")
            status = -1
        else:
            time.sleep(0.02)
    if status != -1 and os.waitstatus_to_exitcode(status) != 0:
        problems.append(f"the forked child exited with {os.waitstatus_to_exitcode(status)}")
    # The parent keeps using the object after the child has gone.
    record.options(queue="after").enqueue(2000)
    assert queue.run_until_empty(queues=["after"]) == 1
    queue.close()
    integrity = ["ok"]  # PostgreSQL: nothing to check from here
    if "://" not in config["db"]:
        with contextlib.closing(sqlite3.connect(config["db"])) as conn:
            integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    write_json(
        folder / "fork-result.json",
        {"parent": os.getpid(), "child": pid, "problems": problems, "integrity": integrity},
    )
    return 0


def _wait_file(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} did not appear within {timeout} s")
        time.sleep(0.01)


def run_fork_outlive(config: dict[str, Any]) -> int:
    """Fork after opening the queue; the parent closes its queue while the forked
    child goes on enqueueing through the inherited object (a preloading server's
    master that is done with the queue, a script that forks workers and leaves)."""
    folder = Path(config["dir"])
    queue = open_queue(config)
    record = queue.get_task("record")
    before = record.enqueue(-1).id

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            # The child's own connection, opened while the parent's is still open.
            ids = [record.enqueue(0).id]
            (folder / "child-open").touch()
            _wait_file(folder / "parent-closed")
            ids += [record.enqueue(n).id for n in range(1, 51)]  # each one committed
            queue.close()
            write_json(folder / "child-ids.json", ids)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)

    status: int | None = None
    try:
        _wait_file(folder / "child-open")
        queue.close()
        (folder / "parent-closed").touch()
        deadline = time.monotonic() + 30.0
        while status is None:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(raw)
            elif time.monotonic() > deadline:
                raise AssertionError("the forked child did not finish in time")
            else:
                time.sleep(0.01)
    finally:
        if status is None:  # not reaped yet: end it
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    write_json(folder / "parent-ids.json", {"ids": [before], "child_exit": status})
    return 0


MODES = {
    "fork-outlive": run_fork_outlive,
    "workers": run_workers,
    "enqueue": run_enqueue,
    "stats": run_stats,
    "fork": run_fork,
}


def main() -> int:
    config = json.loads(sys.argv[1])
    return MODES[config["mode"]](config)


if __name__ == "__main__":
    sys.exit(main())
