"""The newsletter demo (examples/newsletter) on Redis under a real ``gunicorn -w 4``,
with worker processes killed by SIGKILL while the emails go out: every recipient
gets the email, the batch reports "N sent, 0 failed" once, and an email arrives
twice only for a job that a killed process held (its lease expired and another
process ran it again: at least once, not exactly once, for a side effect outside
the queue).

One SMTP server, in this process, receives from every gunicorn worker and counts
what it got. ``JOBQ_NEWSLETTER_EMAILS`` and ``JOBQ_NEWSLETTER_KILLS`` (default
500 and 2) make a bigger run, e.g. 10,000 emails and 6 kills.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import jobq
from tests.helpers import (
    ROOT,
    drop_redis_prefix,
    gunicorn_port,
    open_location,
    redis_location,
    redis_test_prefix,
    wait_for,
)

pytestmark = [
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
    pytest.mark.timeout(120 + int(os.environ.get("JOBQ_NEWSLETTER_EMAILS", "500")) // 20),
]

sys.path.insert(0, str(ROOT / "examples" / "newsletter"))
from local_smtp import SmtpServer, start_smtp_server  # noqa: E402

APP = "tests.integration._newsletter_gunicorn_app:create_app()"
WORKERS = 4
CONCURRENCY = 4  # the example's worker threads per process
EMAILS = int(os.environ.get("JOBQ_NEWSLETTER_EMAILS", "500"))
KILLS = int(os.environ.get("JOBQ_NEWSLETTER_KILLS", "2"))
LEASE_SECONDS = 2.0
BOOT_LIMIT = 30.0
RUN_LIMIT = 60.0 + EMAILS / 50

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


def _call(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with _DIRECT.open(request, timeout=60) as response:
        return json.loads(response.read())


def _children(master: int) -> set[int]:
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            match = re.search(r"^PPid:\s+(\d+)$", status.read_text(), re.MULTILINE)
            if match and int(match.group(1)) == master:
                found.add(int(status.parent.name))
    return found


@contextlib.contextmanager
def _gunicorn(
    tmp_path: Path, database: str, smtp: SmtpServer
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log = tmp_path / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "--workers", str(WORKERS)]
    command += ["--bind", "127.0.0.1:0", "--timeout", "120", "--graceful-timeout", "5"]
    command += ["--worker-tmp-dir", str(tmp_path), "--no-control-socket", APP]
    env = {
        **os.environ,
        "JOBQ_DATABASE": database,
        "NEWSLETTER_SMTP_PORT": str(smtp.port),
        "NEWSLETTER_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process, log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = redis_test_prefix()
    yield prefix
    drop_redis_prefix(prefix)


def test_newsletter_on_redis_survives_killed_gunicorn_workers(
    tmp_path: Path, redis_prefix: str
) -> None:
    url = redis_location(redis_prefix).partition("#")[0]
    database = f"{url}?prefix={redis_prefix}&durability=ignore"
    smtp = start_smtp_server(refuse_every=500)
    try:
        with _gunicorn(tmp_path, database, smtp) as (process, log):
            port = gunicorn_port(process, log, BOOT_LIMIT)
            wait_for(lambda: len(_children(process.pid)) == WORKERS, "4 workers", BOOT_LIMIT)
            reply = _call(port, "POST", "/newsletter", {"subject": "hi", "recipients": EMAILS})
            assert reply["queued"] == EMAILS

            killed: list[int] = []
            for kill in range(1, KILLS + 1):
                # Spread the kills over the run, each once that many emails arrived.
                mark = EMAILS * kill // (KILLS + 2)
                wait_for(
                    lambda mark=mark: smtp.stats().received >= mark, f"{mark} emails", RUN_LIMIT
                )
                victim = max(_children(process.pid) - set(killed))
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
                # gunicorn replaces it; the newcomer starts its own workers.
                wait_for(
                    lambda gone=set(killed): len(_children(process.pid) - gone) == WORKERS,
                    "a replacement worker",
                    BOOT_LIMIT,
                )
            assert smtp.stats().received < EMAILS, "the kills came too late to matter"

            report: dict[str, Any] = {}

            def reported() -> bool:
                nonlocal report
                report = _call(port, "GET", reply["report"])
                return report["report"] is not None

            wait_for(reported, "the batch's report", RUN_LIMIT, interval=0.1)
            assert report["report"] == f"{EMAILS:,} sent, 0 failed"
            assert report["jobs"]["completed"] == EMAILS
            assert f"[{killed[0]}] [INFO] Booting worker" in log.read_text()
    finally:
        smtp.stop()

    copies = Counter(delivery.recipient for delivery in smtp.deliveries())
    assert set(copies) == {f"user{n}@example.com" for n in range(1, EMAILS + 1)}
    twice = {recipient for recipient, n in copies.items() if n > 1}
    # A killed process was sending at most CONCURRENCY emails, each sent once more.
    assert len(twice) <= KILLS * CONCURRENCY
    assert all(copies[recipient] == 2 for recipient in twice)
    queue = jobq.DurableQueue(open_location(redis_location(redis_prefix)))
    try:
        sent = queue.list(status="completed", queue="newsletter", limit=EMAILS)
        ids = {job.decoded_payload()["kwargs"]["to"]: job.id for job in sent}
        # The attempts that ended without completing, with the process that ran each.
        lost = {
            to: [(record.outcome, int(record.lease_owner.split(":")[1])) for record in ended]
            for to, job_id in ids.items()
            if (ended := queue.attempts(job_id))
        }
    finally:
        queue.close()
    refused = {to for to, ended in lost.items() if any(o == "failed" for o, _ in ended)}
    assert refused <= smtp.refused_recipients()  # 451: tried again, by design
    cut = {to: {pid for o, pid in ended if o != "failed"} for to, ended in lost.items()}
    cut = {to: pids for to, pids in cut.items() if pids}
    # Every attempt cut short was cut by a kill (none by a lapsed heartbeat) ...
    assert set().union(*cut.values()) <= set(killed)
    # ... and every duplicate is a job that a killed process held.
    assert twice <= set(cut)
    rescued = len(cut)
    print(
        f"\nnewsletter on Redis under gunicorn -w {WORKERS}: {EMAILS} emails, "
        f"{sum(copies.values())} received, {len(copies)} recipients, {KILLS} kills, "
        f"{len(twice)} duplicates, {rescued} jobs rescued after a kill"
    )
