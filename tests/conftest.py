"""Shared fixtures. Every test must leave no jobq thread running behind it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from jobq.testing import FakeClock, shutdown_executors

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
