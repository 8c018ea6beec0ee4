"""kill -9 chaos: worker processes SIGKILLed at random moments, and no job lost.

``python stress/chaos.py`` starts ``--processes`` worker processes of
``--threads`` threads on one database (a fresh SQLite file by default,
``--url postgresql://...`` for PostgreSQL, ``--url redis://...`` for Redis, keys
under ``--prefix``), enqueues ``--jobs`` short jobs,
then SIGKILLs a random worker process at a random moment ``--kills`` times,
restarting it each time. Each job appends ``start``/``done`` lines (job id,
attempt, pid, time) to a ledger file of its process, outside the queue, and
each rescue sweep a line (the ``now`` it gave the database, when it returned,
the ids it rescued) to a sweeps file of its process.

At the end it checks, from the database and the ledgers:

- no job lost: every id is in a final status, and completed;
- every id ran at least once;
- a job ran twice only if its earlier run was in a process that was killed
  (a fact, whatever the times: a process writes nothing after it is reaped),
  and the next run did not start before that kill was sent;
- every rescue counted an attempt (attempts grow with every run; a job that
  ran again carries the ``LeaseExpired`` or ``WorkerDied`` error of its rescue);
- no rescue was late: a killed run's lease ends before reap time + lease (it
  was last renewed before the kill), so any sweep that began after that
  (its ``now``, the time the database compares leases with) must find the job
  expired; the rescue must then have begun before that sweep returned.
  Exact, whatever the load: a sweep that runs late only moves the bound.
  (PostgreSQL compares leases with its own clock, on the same host, which
  reads between the sweep's ``now`` and its return.)
  (Checked when the next run is the very next attempt; a job claimed in
  between by a process killed before starting it is counted, not checked.)
- no error reached a caller (the pools' logged database errors, the
  supervisor's own calls);
- ``PRAGMA integrity_check`` is ``ok`` (SQLite).

It prints a table of figures and exits 1 if any check failed.
``tests/integration/test_reliability.py`` runs a short version through :func:`run`.
Child mode (``python stress/chaos.py --child '<json>'``) is one worker process.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import jobq  # noqa: E402
from jobq import DurableQueue, JobStatus  # noqa: E402

HARD_LIMIT = 3600.0
"""Seconds after which a worker child gives up waiting for the stop file."""
MAX_ATTEMPTS = 1000
"""Attempts each chaos job may use: kills must never exhaust them."""


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_queue(db: str, *, prefix: str | None = None, **options: Any) -> DurableQueue:
    """A queue on ``db``: a SQLite path, a ``postgresql://`` URL, or a Redis URL with
    its keys under ``prefix`` (default ``jobq:``). The Redis server's persistence
    settings are not judged: a chaos run kills workers, not the server."""
    if db.startswith(REDIS_SCHEMES):
        from jobq.storage.redis import RedisStorage

        storage = RedisStorage(db, prefix=prefix or "jobq:", durability="ignore")
        return DurableQueue(storage, **options)
    return DurableQueue(db, **options)


# -- the worker child ------------------------------------------------------------------


class _ErrorFile(logging.Handler):
    """Appends every record jobq logs at ERROR to a file at once: a killed process
    cannot report at its end."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.ERROR)
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        with open(self.path, "a") as file:
            file.write(json.dumps(record.getMessage() + f" [{record.exc_info!r:.300}]") + "\n")


def _append(fd: int, line: str) -> None:
    os.write(fd, line.encode())  # one write to an O_APPEND file: whole lines only


def child(config: dict[str, Any]) -> int:
    """One worker process: a pool of ``threads`` threads until the ``stop`` file."""
    folder = Path(config["dir"])
    pid = os.getpid()
    logging.getLogger("jobq").addHandler(_ErrorFile(folder / f"errors-{pid}.txt"))
    ledger = os.open(folder / f"ledger-{pid}.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    lock = threading.Lock()
    queue = open_queue(
        config["db"],
        prefix=config.get("prefix"),
        lease_seconds=float(config["lease"]),
        poll_interval=0.01,
        driver=config.get("driver", "sqlite3"),
    )
    pause = float(config["job_sleep"])

    @queue.task("chaos", max_attempts=MAX_ATTEMPTS, queue=config["queue"])
    def chaos(n: int) -> int:
        job = jobq.current_job()
        with lock:
            _append(ledger, f"start {job.id} {pid} {job.attempt} {time.time():.6f}\n")
        time.sleep(pause)
        with lock:
            _append(ledger, f"done {job.id} {pid} {job.attempt} {time.time():.6f}\n")
        return n

    sweeps = os.open(folder / f"sweeps-{pid}.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    storage = queue.storage
    rescue = storage.rescue_expired

    def logged_rescue(*, now: float, limit: int = 1000) -> Any:
        # Wraps the real call to record every sweep, empty ones too.
        result = rescue(now=now, limit=limit)
        ids = ",".join(str(i) for i in result.requeued + result.failed + result.cancelled)
        full = "full" if result.total >= limit else "part"
        _append(sweeps, f"sweep {now!r} {time.time()!r} {full} {ids or '-'}\n")
        return result

    storage.rescue_expired = logged_rescue  # type: ignore[method-assign]
    release = getattr(storage, "release_owner", None)

    def logged_release(owner: str, *, started_at: float, now: float) -> Any:
        # The release of a dead pool's jobs on this host (the registry's check) is a
        # rescue too; it covers one owner's jobs only, so, like a full sweep, it may
        # leave other expired leases behind: logged as "full".
        assert release is not None
        result = release(owner, started_at=started_at, now=now)
        ids = ",".join(str(i) for i in result.requeued + result.failed + result.cancelled)
        _append(sweeps, f"sweep {now!r} {time.time()!r} full {ids or '-'}\n")
        return result

    if release is not None:
        storage.release_owner = logged_release  # type: ignore[attr-defined]
    pool = queue.start_workers(concurrency=int(config["threads"]))
    (folder / f"ready-{pid}").touch()
    deadline = time.monotonic() + HARD_LIMIT
    while not (folder / "stop").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    finished = pool.stop(timeout=10.0)
    queue.close()
    return 0 if finished else 4


# -- the supervisor --------------------------------------------------------------------


@dataclass
class Figures:
    """What a chaos run measured; ``problems`` lists every failed check."""

    backend: str
    processes: int
    threads: int
    jobs: int
    kills: int = 0
    lost: int = 0
    never_ran: int = 0
    duplicated: int = 0
    bad_duplicates: int = 0
    runs: int = 0
    rescues_measured: int = 0
    compounded: int = 0
    late_rescues: int = 0
    max_rescue_delay: float = 0.0
    max_restart_delay: float = 0.0
    errors: int = 0
    integrity: str = "ok"
    wall_time: float = 0.0
    problems: list[str] = field(default_factory=list)

    def table(self) -> str:
        rows = [
            ("backend", self.backend),
            ("processes x threads", f"{self.processes} x {self.threads}"),
            ("jobs", self.jobs),
            ("kills (SIGKILL)", self.kills),
            ("jobs lost (not final / not completed)", self.lost),
            ("jobs that never ran", self.never_ran),
            ("runs (ledger starts)", self.runs),
            ("jobs run more than once", self.duplicated),
            ("  of which not explained by a kill", self.bad_duplicates),
            ("rescues checked (kill -> rescue sweep)", self.rescues_measured),
            ("  not checked: held again by a killed pid", self.compounded),
            ("  late: a sweep after the lease missed it", self.late_rescues),
            ("max kill -> rescue (s)", f"{self.max_rescue_delay:.2f}"),
            ("max kill -> next start (s)", f"{self.max_restart_delay:.2f}"),
            ("errors surfaced to callers", self.errors),
            ("integrity_check", self.integrity),
            ("wall time (s)", f"{self.wall_time:.1f}"),
            ("checks", "all passed" if not self.problems else f"{len(self.problems)} FAILED"),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        return "\n".join(lines + [f"FAILED: {p}" for p in self.problems])


@dataclass(frozen=True)
class Kill:
    """One SIGKILL, in wall-clock seconds: every line the victim wrote is older than
    ``reaped``; anything another process did before ``sent`` was while it lived."""

    sent: float
    reaped: float


@dataclass(frozen=True)
class Sweep:
    """One rescue sweep as a worker logged it: the ``now`` it gave the database,
    when it returned, whether it hit its row limit, and the ids it rescued."""

    now: float
    returned: float
    full: bool
    ids: frozenset[int]


class _Procs:
    """Worker children: each in its own session, killed and reaped whatever happens."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        self.folder = folder
        self.config = config
        self.live: list[subprocess.Popen[bytes]] = []
        self.ended: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"child-{len(self.live) + len(self.ended)}.log", "wb")  # noqa: SIM115
        with log:
            proc = subprocess.Popen(
                [sys.executable, __file__, "--child", json.dumps(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=ROOT,
            )
        self.live.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> Kill:
        """SIGKILL the child's whole process group and reap it; return when the
        signal was sent and when the process was known dead."""
        sent = time.time()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30.0)
        reaped = time.time()
        self.live.remove(proc)
        self.ended.append(proc)
        return Kill(sent, reaped)

    def stop_all(self, timeout: float = 30.0) -> list[int]:
        """Ask the live children to stop; kill what has not exited by ``timeout``."""
        (self.folder / "stop").touch()
        codes = []
        deadline = time.monotonic() + timeout
        for proc in list(self.live):
            try:
                codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                self.kill(proc)
                codes.append(-signal.SIGKILL)
        self.ended += self.live
        self.live = []
        return codes

    def kill_all(self) -> None:
        for proc in list(self.live):
            self.kill(proc)


def _wait(predicate: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s: {what}")
        time.sleep(0.01)


def read_ledger(folder: Path) -> list[tuple[str, int, int, int, float]]:
    """Every ledger line of every process: (event, job id, pid, attempt, time), by time.
    A line cut short by a kill is skipped."""
    entries = []
    for path in folder.glob("ledger-*.txt"):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 5:
                event, job_id, pid, attempt, when = parts
                entries.append((event, int(job_id), int(pid), int(attempt), float(when)))
    return sorted(entries, key=lambda e: e[4])


def read_sweeps(folder: Path) -> list[Sweep]:
    """Every sweep every process logged, by ``now``. A line cut short by a kill is skipped."""
    sweeps = []
    for path in folder.glob("sweeps-*.txt"):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 5 or parts[0] != "sweep" or parts[3] not in ("full", "part"):
                continue
            try:
                ids = frozenset() if parts[4] == "-" else frozenset(map(int, parts[4].split(",")))
                sweeps.append(Sweep(float(parts[1]), float(parts[2]), parts[3] == "full", ids))
            except ValueError:
                continue
    return sorted(sweeps, key=lambda sweep: sweep.now)


def _count_errors(folder: Path) -> tuple[int, list[str]]:
    messages: list[str] = []
    for path in folder.glob("errors-*.txt"):
        messages += [json.loads(line) for line in path.read_text().splitlines() if line]
    return len(messages), messages[:5]


def _integrity(db: str) -> str:
    if db.startswith(REDIS_SCHEMES):
        return "n/a (Redis)"
    if "://" in db:
        return "n/a (PostgreSQL)"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return ", ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))


def run(
    db: str,
    folder: Path,
    *,
    processes: int = 4,
    threads: int = 4,
    jobs: int = 10_000,
    kills: int = 200,
    lease: float = 5.0,
    job_sleep: float = 0.15,
    gap: tuple[float, float] = (0.2, 0.8),
    seed: int | None = None,
    driver: str = "sqlite3",
    timeout: float = 900.0,
    log: Any = None,
    prefix: str | None = None,
) -> Figures:
    """One chaos run on ``db`` (a SQLite path, a ``postgresql://`` URL or a Redis
    URL, its keys under ``prefix``), with files in ``folder``; kills come every
    ``gap`` seconds (uniform) until ``kills`` were made or every job finished.
    Returns the figures; every failed check is in ``problems``."""
    say = log or (lambda text: None)
    rng = random.Random(seed)
    began = time.monotonic()
    figures = Figures(
        "postgresql" if "://" in db else f"sqlite ({driver})", processes, threads, jobs
    )
    if db.startswith(REDIS_SCHEMES):
        figures.backend = "redis"
    name = f"chaos-{os.getpid()}-{rng.randrange(10**6)}"  # a rerun on one database
    config = {
        "db": db,
        "dir": str(folder),
        "threads": threads,
        "lease": lease,
        "job_sleep": job_sleep,
        "driver": driver,
        "queue": name,
        "prefix": prefix,
    }
    queue = open_queue(db, prefix=prefix, lease_seconds=lease, driver=driver)
    queue.task("chaos", max_attempts=MAX_ATTEMPTS, queue=name)(lambda n: n)
    task = queue.get_task("chaos")
    ids: list[int] = []
    for start in range(0, jobs, 1000):
        ids += task.enqueue_many([(n,) for n in range(start, min(jobs, start + 1000))])
    say(f"enqueued {len(ids)} jobs")
    procs = _Procs(folder, config)
    killed: dict[int, Kill] = {}  # pid -> its kill
    caller_errors: list[str] = []

    def done() -> int:
        try:
            counts = queue.stats().queues[name].counts
        except jobq.JobqError as exc:
            caller_errors.append(f"stats: {exc!r}")
            return -1
        return sum(n for status, n in counts.items() if status.is_final)

    try:
        for _ in range(processes):
            procs.start()
        _wait(lambda: len(list(folder.glob("ready-*"))) >= processes, "workers ready", 60.0)
        while len(killed) < kills and done() < jobs:
            time.sleep(rng.uniform(*gap))
            victim = rng.choice(procs.live)
            killed[victim.pid] = procs.kill(victim)
            procs.start()
            if len(killed) % 20 == 0:
                say(f"{len(killed)} kills, {done()} jobs finished")
        figures.kills = len(killed)
        wait_left = timeout - (time.monotonic() - began)
        _wait(lambda: done() == jobs, "every job finished", max(wait_left, lease * 3 + 30))
        codes = procs.stop_all()
        if any(codes):
            figures.problems.append(f"worker exit codes at stop: {codes}")
    except TimeoutError as exc:
        figures.problems.append(str(exc))
    finally:
        procs.kill_all()
    figures.wall_time = time.monotonic() - began
    stored = []
    after = 0
    while True:
        page = queue.storage.list_jobs(queue=name, after_id=after, limit=10_000)
        stored += page
        if len(page) < 10_000:
            break
        after = page[-1].id
    queue.close()
    _check(figures, ids, stored, read_ledger(folder), read_sweeps(folder), killed, lease)
    figures.errors, samples = _count_errors(folder)
    figures.errors += len(caller_errors)
    if figures.errors:
        examples = samples + caller_errors[:5]
        figures.problems.append(f"{figures.errors} errors reached callers: {examples}")
    figures.integrity = _integrity(db)
    if figures.integrity not in ("ok", "n/a (PostgreSQL)", "n/a (Redis)"):
        figures.problems.append(f"integrity_check: {figures.integrity}")
    return figures


def _check(
    figures: Figures,
    ids: list[int],
    stored: list[Any],
    ledger: list[tuple[str, int, int, int, float]],
    sweeps: list[Sweep],
    killed: dict[int, Kill],
    lease: float,
) -> None:
    problems = figures.problems
    by_id = {job.id: job for job in stored}
    not_done = [i for i in ids if i not in by_id or by_id[i].status is not JobStatus.COMPLETED]
    figures.lost = len(not_done)
    if not_done:
        statuses = {i: by_id[i].status.value if i in by_id else "missing" for i in not_done[:10]}
        problems.append(f"{len(not_done)} jobs not completed, e.g. {statuses}")
    starts: dict[int, list[tuple[int, int, float]]] = defaultdict(list)  # id -> (attempt, pid, t)
    for event, job_id, pid, attempt, when in ledger:
        if event == "start":
            starts[job_id].append((attempt, pid, when))
    figures.runs = sum(len(s) for s in starts.values())
    never = [i for i in ids if i not in starts]
    figures.never_ran = len(never)
    if never:
        problems.append(f"{len(never)} jobs never ran, e.g. {never[:10]}")
    delays: list[float] = []
    restarts: list[float] = []
    late: list[str] = []
    bad: list[str] = []
    for job_id, runs in starts.items():
        job = by_id.get(job_id)
        attempts = [attempt for attempt, _, _ in runs]
        if attempts != sorted(set(attempts)):
            bad.append(f"job {job_id}: attempts not increasing {runs}")
        if job is not None and job.status is JobStatus.COMPLETED and attempts[-1] != job.attempts:
            bad.append(f"job {job_id}: completed with attempts={job.attempts}, last run {runs[-1]}")
        if (
            job is not None
            and job.attempts > 1
            and (job.error is None or job.error.type not in ("LeaseExpired", "WorkerDied"))
        ):
            bad.append(f"job {job_id}: {job.attempts} attempts but error {job.error}")
        if len(runs) == 1:
            continue
        figures.duplicated += 1
        for (attempt, pid, when), (next_attempt, next_pid, next_when) in itertools.pairwise(runs):
            kill = killed.get(pid)
            if kill is None or next_pid == pid:
                bad.append(f"job {job_id}: ran again without a kill: {runs}")
                break
            if next_when < kill.sent:
                bad.append(f"job {job_id}: taken over before its holder was killed: {runs}")
                break
            if next_attempt != attempt + 1:
                # claimed in between by a process killed before it started the job
                figures.compounded += 1
                continue
            rescue = next(
                (s for s in sweeps if job_id in s.ids and when < s.now <= next_when), None
            )
            if rescue is None:  # its sweep's process was killed before it logged it
                continue
            delays.append(rescue.now - kill.reaped)
            restarts.append(next_when - kill.reaped)
            # The lease ended before kill.reaped + lease: a whole sweep that began
            # later must have found it expired, unless a rescue had begun first.
            expired_by = kill.reaped + lease
            after = [s for s in sweeps if s.now > expired_by and not s.full]
            missed = min(after, key=lambda s: s.returned, default=None)
            if missed is not None and rescue.now > missed.returned:
                late.append(
                    f"job {job_id}: lease over by {expired_by:.3f}, the sweep of "
                    f"{missed.now:.3f} left it, rescued at {rescue.now:.3f}"
                )
    figures.bad_duplicates = len({entry.split(":")[0] for entry in bad})
    if bad:
        problems.append(f"{len(bad)} bad runs, e.g. {bad[:5]}")
    figures.rescues_measured = len(delays)
    figures.max_rescue_delay = max(delays, default=0.0)
    figures.max_restart_delay = max(restarts, default=0.0)
    figures.late_rescues = len(late)
    if late:
        problems.append(f"{len(late)} late rescues, e.g. {late[:5]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--url", help="postgresql:// or redis:// URL, or SQLite path (default: a temp file)"
    )
    parser.add_argument("--prefix", help="what every Redis key starts with (default jobq:)")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--lease", type=float, default=5.0, help="lease seconds (default 5)")
    parser.add_argument("--job-sleep", type=float, default=0.15, help="seconds each job takes")
    parser.add_argument(
        "--gap",
        type=float,
        nargs=2,
        default=(0.2, 0.8),
        help="seconds between kills, uniform in [min, max]",
    )
    parser.add_argument("--driver", choices=["sqlite3", "apsw"], default="sqlite3")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    folder = Path(tempfile.mkdtemp(prefix="jobq-chaos-"))
    db = args.url or str(folder / "chaos.db")
    print(f"work folder: {folder}", flush=True)
    figures = run(
        db,
        folder,
        processes=args.processes,
        threads=args.threads,
        jobs=args.jobs,
        kills=args.kills,
        lease=args.lease,
        job_sleep=args.job_sleep,
        gap=tuple(args.gap),
        seed=args.seed,
        driver=args.driver,
        log=lambda text: print(text, flush=True),
        prefix=args.prefix,
    )
    print(figures.table())
    if not args.keep and not figures.problems:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    return 1 if figures.problems else 0


if __name__ == "__main__":
    sys.exit(main())
