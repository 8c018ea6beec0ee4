"""How long the jobs of killed gunicorn workers wait: the newsletter example under
``gunicorn -w 4``, without kills, with two workers SIGKILLed mid-run, and the same
kills with the release of dead pools' jobs turned off (leases only).

    python benchmarks/bench_rescue.py                # 2,000 emails per run, about 1.5 minutes
    python benchmarks/bench_rescue.py --count 10000  # 10,000 emails per run
    python benchmarks/bench_rescue.py --runs A,B     # some of the runs only

Each run gets a fresh SQLite file, its own SMTP server (started here, on a free
port of 127.0.0.1, answering 451 to the first try for every 500th recipient as
the example's does) and its own gunicorn (``benchmarks/_rescue_app.py``: the
example's app, sending to that server). Once the four gunicorn workers' pools
are registered, one ``POST /newsletter`` queues N emails; the clock runs from
that request to the moment the server has received a message for every
recipient.

- A: no kills.
- B: once 30% of the recipients got their email, two gunicorn workers (pids
  from the registry of live pools) are SIGKILLed together; gunicorn forks
  replacements. Their jobs (running and claimed ahead) are released by the
  other pools on this host as soon as they see the pids gone (about every
  second, and at once when a replacement's pool starts).
- C: the same kills with that release turned off in every gunicorn worker
  (``BENCH_RESCUE_LEASE_ONLY=1``, a switch of this benchmark only): the jobs wait
  for their 30 s leases to lapse, as before the registry's check existed.

Printed: time to the last email, delay versus A, duplicate emails (a killed
worker may have sent an email whose job it could not record as done: at least
once delivery), and how many jobs were released by the registry's check and by
lease expiry (from the WARNING lines of gunicorn's log). Goal: B within 5 s of
A; C about 30-40 s later than A. Absolute times depend on the machine; compare
the delays.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples" / "newsletter"))

from local_smtp import SmtpServer, start_smtp_server  # noqa: E402

import jobq  # noqa: E402

WORKERS = 4
KILLED = 2
KILL_AT = 0.3  # fraction of the recipients served before the kills
STEP_DEADLINE = 60.0  # seconds any start-up step may take
RUN_DEADLINE = 300.0  # seconds a run may take
GOAL_B = 5.0  # B within 5 s of A
FAST = re.compile(r"released (\d+) jobs of worker pool")
LEASED = re.compile(r"released (\d+) jobs whose worker stopped renewing")


@dataclass(frozen=True)
class Outcome:
    """One run's figures."""

    label: str
    kills: int
    fast_release: bool
    seconds: float
    duplicates: int
    released_fast: int
    released_by_lease: int


def _wait(predicate: object, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"not within {timeout} s: {what}")
        time.sleep(0.01)


def _port(gunicorn: subprocess.Popen[bytes], log: Path) -> int:
    found: list[int] = []

    def listening() -> bool:
        if gunicorn.poll() is not None:
            raise SystemExit(f"gunicorn exited early:\n{log.read_text()}")
        match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", log.read_text())
        if match:
            found.append(int(match.group(1)))
        return bool(found)

    _wait(listening, "gunicorn listening", STEP_DEADLINE)
    return found[0]


def _start_gunicorn(
    folder: Path, db: Path, server: SmtpServer, lease_only: bool, log: Path
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "gunicorn",
        "--workers", str(WORKERS),
        "--worker-class", "sync",
        "--bind", "127.0.0.1:0",
        "--graceful-timeout", "10",
        "--timeout", "120",
        "--worker-tmp-dir", str(folder),
        "--log-level", "info",
        "benchmarks._rescue_app:create()",
    ]  # fmt: skip
    env = {
        **os.environ,
        "BENCH_RESCUE_DB": str(db),
        "BENCH_RESCUE_SMTP_PORT": str(server.port),
        "BENCH_RESCUE_LEASE_ONLY": "1" if lease_only else "0",
        "PYTHONPATH": str(ROOT),
    }
    with open(log, "wb") as output:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(gunicorn: subprocess.Popen[bytes]) -> None:
    if gunicorn.poll() is None:
        gunicorn.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            gunicorn.wait(30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(gunicorn.pid, signal.SIGKILL)  # anything of its session left
    gunicorn.wait()


def run(label: str, count: int, kills: int, lease_only: bool, folder: Path) -> Outcome:
    """One run: gunicorn serving the newsletter, ``count`` emails, ``kills`` workers killed."""
    db = folder / f"{label}.db"
    log = folder / f"{label}.log"
    server = start_smtp_server(refuse_every=500)
    gunicorn = _start_gunicorn(folder, db, server, lease_only, log)
    try:
        port = _port(gunicorn, log)
        _wait(db.exists, "the queue's file created", STEP_DEADLINE)
        queue = jobq.DurableQueue(str(db))
        try:
            _wait(lambda: len(queue.workers()) == WORKERS, "every worker's pool", STEP_DEADLINE)
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/newsletter",
                data=json.dumps({"subject": f"bench {label}", "recipients": count}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            began = time.monotonic()
            with urllib.request.urlopen(request, timeout=STEP_DEADLINE) as answer:
                assert answer.status == 202, answer.read()
            killed = kills == 0
            deadline = began + RUN_DEADLINE
            while True:
                stats = server.stats()
                if stats.distinct_recipients >= count:
                    seconds = time.monotonic() - began
                    break
                if not killed and stats.distinct_recipients >= count * KILL_AT:
                    pids = sorted({w.pid for w in queue.workers()})[:kills]
                    for pid in pids:
                        os.kill(pid, signal.SIGKILL)
                    killed = True
                if time.monotonic() > deadline:
                    raise SystemExit(f"run {label}: not every email within {RUN_DEADLINE} s")
                time.sleep(0.01)
        finally:
            queue.close()
    finally:
        _stop(gunicorn)
        stats = server.stats()
        server.stop()
    text = log.read_text()
    return Outcome(
        label,
        kills,
        not lease_only,
        seconds,
        stats.received - stats.distinct_recipients,
        sum(int(n) for n in FAST.findall(text)),
        sum(int(n) for n in LEASED.findall(text)),
    )


def table(outcomes: list[Outcome]) -> str:
    """The figures as a plain-text table, delays versus run A when it ran."""
    base = next((o.seconds for o in outcomes if o.label == "A"), None)
    head = ["run", "kills", "fast release", "last email (s)", "vs A (s)", "duplicates"]
    head += ["released by registry", "released by lease"]
    rows = [
        [
            o.label,
            str(o.kills),
            "on" if o.fast_release else "off",
            f"{o.seconds:.2f}",
            "-" if base is None else f"{o.seconds - base:+.2f}",
            str(o.duplicates),
            str(o.released_fast),
            str(o.released_by_lease),
        ]
        for o in outcomes
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join(
        " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]
    )


RUNS = {"A": (0, False), "B": (KILLED, False), "C": (KILLED, True)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="emails per run (default 2000)")
    parser.add_argument("--runs", default="A,B,C", help="which runs, comma-separated (A,B,C)")
    parser.add_argument("--dir", help="keep the databases and gunicorn logs in this folder")
    args = parser.parse_args(argv)
    labels = [label.strip().upper() for label in args.runs.split(",") if label.strip()]
    if args.count < 10 or any(label not in RUNS for label in labels):
        parser.error("--count must be at least 10 and --runs a list of A, B, C")
    with tempfile.TemporaryDirectory(prefix="jobq-bench-rescue-") as scratch:
        folder = Path(args.dir) if args.dir else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        outcomes = []
        for label in labels:
            kills, lease_only = RUNS[label]
            outcomes.append(run(label, args.count, kills, lease_only, folder))
            print(f"run {label} done in {outcomes[-1].seconds:.2f} s", flush=True)
    print(f"\nnewsletter under gunicorn -w {WORKERS}, {args.count} emails, SQLite, "
          f"{os.cpu_count()} CPUs\n")  # fmt: skip
    print(table(outcomes))
    base = next((o.seconds for o in outcomes if o.label == "A"), None)
    fast = next((o.seconds for o in outcomes if o.label == "B"), None)
    if base is not None and fast is not None:
        met = fast - base <= GOAL_B
        print(f"\ngoal: B within {GOAL_B:.0f} s of A: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
