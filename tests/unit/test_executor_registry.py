"""jobq.executor(): one named executor per process."""

from __future__ import annotations

import threading

import pytest

import jobq
from jobq.testing import FakeClock
from tests.helpers import eventually


def test_every_thread_gets_the_same_instance() -> None:
    seen: list[jobq.BoundedExecutor] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        seen.append(jobq.executor("openai", max_workers=4, rate=10, per=60))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(seen) == 8
    assert all(instance is seen[0] for instance in seen)
    assert jobq.executor("openai") is seen[0]
    assert jobq.executor("openai", max_workers=4) is seen[0]  # agreeing subset


def test_one_limit_governs_every_caller() -> None:
    clock = FakeClock()
    starts: list[float] = []
    for _ in range(3):  # three "requests", each asking for the executor by name
        pool = jobq.executor("api", max_workers=3, rate=1, per=60, clock=clock)
        pool.submit(lambda: starts.append(clock.now()))
    pool = jobq.executor("api")
    eventually(lambda: len(starts) == 1 and pool.waiting == 2)
    for expected in (2, 3):
        clock.advance(60)
        eventually(lambda expected=expected: len(starts) == expected)
    assert starts == [0, 60, 120]


def test_different_settings_are_a_clear_error() -> None:
    jobq.executor("images", max_workers=3)
    with pytest.raises(jobq.ConfigurationError) as caught:
        jobq.executor("images", max_workers=5, rate=2)
    message = str(caught.value)
    assert "executor 'images' is already configured differently" in message
    assert "max_workers=5 (was 3)" in message
    assert "rate=2 (was None)" in message


def test_asking_for_an_unconfigured_name_says_how_to_configure_it() -> None:
    with pytest.raises(jobq.ConfigurationError, match=r"no executor named 'nope' is configured"):
        jobq.executor("nope")


def test_a_shut_down_executor_is_replaced_with_the_same_settings() -> None:
    first = jobq.executor("batch", max_workers=2, rate=100)
    first.shutdown()
    assert first.is_shutdown
    second = jobq.executor("batch")
    assert second is not first
    assert not second.is_shutdown
    assert second.name == "batch"
    assert second.max_workers == 2
    assert second.submit(abs, -1).result(10) == 1
    with pytest.raises(jobq.ConfigurationError, match="max_workers=3 \\(was 2\\)"):
        jobq.executor("batch", max_workers=3)
