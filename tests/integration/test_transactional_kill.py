"""kill -9 between the app's row and its job: a child process writes a user row
and enqueues its welcome job in one transaction (tests/integration/
_transactional_child.py) and is SIGKILLed right after a random step of a random
iteration (before the row, between the row and the job, before or after the
commit, after a rollback). Afterwards every user row has exactly one job and
every job its user row: both there or both absent. Real processes, on SQLite
(the app's table in the queue's file) and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import jobq
from tests.helpers import ROOT, both_backends

CHILD = ROOT / "tests" / "integration" / "_transactional_child.py"
STEPS = ["begin", "row", "job", "commit", "committed", "rolled-back"]
WEIGHTS = [1, 2, 2, 3, 1, 1]
"""Mostly inside the transaction and around its commit."""
KILLS = 30


def _engine_url(database: str) -> str:
    if database.startswith("postgresql://"):
        return database.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"sqlite:///{database}"


def _kill_after(database: str, seed: int, step: str, number: int) -> str:
    """Run a child until it prints ``<step> <number>`` (or a later iteration starts),
    SIGKILL it at once, reap it; the last line it printed."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), database, str(seed)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    last = ""
    try:
        assert child.stdout is not None
        for raw in child.stdout:
            last = raw.decode().strip()
            seen_step, seen_number = last.split()
            if (seen_step == step and int(seen_number) == number) or int(seen_number) > number:
                break
        else:
            errors = child.stderr.read().decode() if child.stderr else ""
            raise AssertionError(f"the child ended: {errors[-2000:]}")
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    assert child.returncode == -signal.SIGKILL
    return last


@pytest.mark.slow
@both_backends
def test_the_app_row_and_its_job_survive_or_vanish_together_under_kill_9(
    database: str, tmp_path: Path
) -> None:
    queue = jobq.DurableQueue(database, driver="sqlite3")  # creates the jobq tables
    engine = create_engine(_engine_url(database))
    key = "SERIAL" if database.startswith("postgresql://") else "INTEGER"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE users (id {key} PRIMARY KEY, name TEXT UNIQUE)"))
    chance = random.Random(19)
    killed_after: Counter[str] = Counter()
    try:
        for seed in range(KILLS):
            step, number = chance.choices(STEPS, WEIGHTS)[0], chance.randint(1, 4)
            last = _kill_after(database, seed, step, number)
            killed_after[last.split()[0]] += 1
        with engine.connect() as conn:
            users = set(conn.execute(text("SELECT name FROM users")).scalars())
        jobs = Counter(json.loads(job.payload)["args"][0] for job in queue.list(limit=10_000))
        print(f"\nkilled right after: {dict(killed_after)}; users {len(users)}, jobs {len(jobs)}")
        assert [name for name, count in jobs.items() if count > 1] == []
        assert set(jobs) - users == set(), "jobs whose user row is missing"
        assert users - set(jobs) == set(), "user rows whose job is missing"
        assert users, "no transaction ever committed: the test checked nothing"
        # The kills hit the open transaction, not only the quiet moments between them.
        assert killed_after["row"] + killed_after["job"] + killed_after["commit"] > 0
        # The jobs left are sound: they all run, each finding its user.
        ran: list[str] = []
        queue.task("welcome")(ran.append)
        assert queue.run_until_empty() == len(jobs)
        assert sorted(ran) == sorted(users)
    finally:
        queue.close()
        engine.dispose()
