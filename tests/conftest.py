"""Fixtures every test may use. Every test must leave no jobq thread running behind it.

Plain helpers (bounded waits, backends, PostgreSQL schemas) are in tests/helpers.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobq import DurableQueue
from jobq.testing import FakeClock, shutdown_executors
from tests.helpers import (
    BOUNDED_WAIT,
    QUEUE_BACKENDS,
    MakeQueue,
    drop_postgres_schema,
    drop_redis_prefix,
    postgres_schema_url,
    redis_test_prefix,
    require_redis,
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Escape what UTF-8 cannot hold in captured output (tests of hostile error
    messages log lone surrogates), so pytest-xdist can send the report between processes."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    report.sections = [
        (title, text.encode("utf-8", "backslashreplace").decode("utf-8"))
        for title, text in report.sections
    ]


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


@pytest.fixture(params=QUEUE_BACKENDS)
def make_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeQueue]:
    """``make_queue(name="jobs", **options)``: a DurableQueue on the backend under test,
    closed after the test. The same ``name`` reopens the same database. On
    PostgreSQL a queue given a ``clock`` reads time from it, as SQLite does;
    otherwise from the server. A module may add Redis (``"redis"``) to the
    parameters with ``pytest.mark.parametrize("make_queue", ..., indirect=True)``:
    each name a key prefix of its own."""
    opened: list[DurableQueue] = []
    schemas: dict[str, str] = {}
    prefixes: dict[str, str] = {}

    def make(name: str = "jobs", **options: Any) -> DurableQueue:
        if request.param == "sqlite":
            location: Any = tmp_path / f"{name}.db"
        elif request.param == "redis":
            from jobq.storage.redis import RedisStorage

            prefix = prefixes.setdefault(name, redis_test_prefix())
            clock = "caller" if "clock" in options else "database"
            location = RedisStorage(
                require_redis(), prefix=prefix, clock=clock, durability="ignore"
            )
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
    for prefix in prefixes.values():
        drop_redis_prefix(prefix)
