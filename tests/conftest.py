"""Shared fixtures. Every test must leave no jobq thread running behind it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobq import DurableQueue
from jobq.testing import FakeClock, shutdown_executors
from tests.storage._backends import drop_postgres_schema, postgres_schema_url

# Real seconds a test may wait for something that happens in another thread.
BOUNDED_WAIT = 10.0


def _jobq_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("jobq-") and t.is_alive()]


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves jobq worker threads running (Flask's leak_detector idea)."""
    before = set(_jobq_threads())
    yield
    shutdown_executors()
    deadline = time.monotonic() + BOUNDED_WAIT
    leaked = [t for t in _jobq_threads() if t not in before]
    while leaked and time.monotonic() < deadline:
        leaked[0].join(0.05)
        leaked = [t for t in _jobq_threads() if t not in before]
    assert not leaked, f"test left jobq threads running: {[t.name for t in leaked]}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> float:
    """Poll (bounded, in real time) until another thread or process makes ``predicate``
    true; return the wall time (``time.time()``) it was seen true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.002)
    return time.time()


def eventually(predicate: Callable[[], bool], timeout: float = BOUNDED_WAIT) -> None:
    """Wait (bounded, in real time) for another thread to make ``predicate`` true."""
    wait_for(predicate, "condition not reached", timeout)


QUEUE_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
MakeQueue = Callable[..., DurableQueue]


@pytest.fixture(params=QUEUE_BACKENDS)
def make_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeQueue]:
    """``make_queue(name="jobs", **options)``: a DurableQueue on the backend under test,
    closed after the test. The same ``name`` reopens the same database. On
    PostgreSQL a queue given a ``clock`` reads time from it, as SQLite does;
    otherwise from the server."""
    opened: list[DurableQueue] = []
    schemas: dict[str, str] = {}

    def make(name: str = "jobs", **options: Any) -> DurableQueue:
        if request.param == "sqlite":
            location: Any = tmp_path / f"{name}.db"
        else:
            from jobq.storage.postgres import PostgresStorage

            if name not in schemas:
                schemas[name] = postgres_schema_url()
            clock = "caller" if "clock" in options else "database"
            location = PostgresStorage(schemas[name], clock=clock)
        queue = DurableQueue(location, **options)
        opened.append(queue)
        return queue

    yield make
    for queue in opened:
        queue.close()
    for url in schemas.values():
        drop_postgres_schema(url)
