"""TokenBucket and SlidingWindowLimiter, driven by a fake clock."""

from __future__ import annotations

import threading
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobq import SlidingWindowLimiter, TokenBucket
from jobq.testing import FakeClock
from tests.helpers import eventually


def test_bucket_starts_full_then_refills_at_rate(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=2, per=10, burst=3, clock=clock)
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.advance(4.9)  # 0.98 of a token
    assert not bucket.try_acquire()
    clock.advance(0.1)
    assert bucket.try_acquire()
    assert not bucket.try_acquire()


def test_bucket_never_holds_more_than_burst(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=1, per=1, burst=2, clock=clock)
    clock.advance(1000)
    assert bucket.tokens == 2
    assert [bucket.try_acquire() for _ in range(3)] == [True, True, False]


def test_reserve_says_how_long_to_wait(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=1, per=4, clock=clock)
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(4.0)
    clock.advance(4.0)
    assert bucket.reserve() == 0.0


def test_multi_token_requests(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=1, per=1, burst=5, clock=clock)
    assert bucket.try_acquire(5)
    assert not bucket.try_acquire(2)
    clock.advance(2)
    assert bucket.try_acquire(2)
    with pytest.raises(ValueError, match="capacity 5"):
        bucket.try_acquire(6)


def test_blocking_acquire_waits_for_clock_and_times_out(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=1, per=10, clock=clock)
    assert bucket.acquire()
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(bucket.acquire(timeout=5)))
    waiter.start()
    clock.advance(5)
    waiter.join(10)
    assert results == [False]

    waiter = threading.Thread(target=lambda: results.append(bucket.acquire()))
    waiter.start()
    clock.advance(4.0)  # 9 s since the last grant: not yet
    waiter.join(0.1)
    assert waiter.is_alive()
    clock.advance(1.0)
    waiter.join(10)
    assert results == [False, True]
    assert not bucket.try_acquire()


def test_configure_changes_rate_in_place(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=1, per=60, clock=clock)
    assert bucket.try_acquire()
    clock.advance(30)  # half a token earned at the old rate
    bucket.configure(rate=60)  # now one per second
    clock.advance(0.5)
    assert bucket.try_acquire()
    with pytest.raises(ValueError, match="rate must be a finite number greater than 0"):
        bucket.configure(rate=0)
    with pytest.raises(ValueError, match="rate must be a finite number greater than 0"):
        bucket.configure(rate=float("inf"))
    assert bucket.rate == 60  # a refused change changes nothing


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0}, "rate must be a finite number greater than 0, got 0"),
        ({"rate": 1, "per": -1}, "per must be a finite number of seconds greater than 0, got -1"),
        ({"rate": 1, "burst": 0}, "burst must be an integer of at least 1, got 0"),
        ({"rate": 1, "burst": 1.5}, "burst must be an integer of at least 1, got 1.5"),
        ({"rate": float("inf")}, "rate must be a finite number greater than 0, got inf"),
        ({"rate": float("nan")}, "rate must be a finite number greater than 0, got nan"),
        ({"rate": 1, "per": float("inf")}, "per must be a finite number .* got inf"),
        ({"rate": 1, "burst": float("inf")}, "burst must be an integer of at least 1, got inf"),
    ],
)
def test_bucket_rejects_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TokenBucket(**kwargs)  # type: ignore[arg-type]


def test_sliding_window_allows_limit_at_once_then_waits_a_full_window(clock: FakeClock) -> None:
    window = SlidingWindowLimiter(3, per=60, clock=clock)
    assert [window.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.advance(59.999)
    assert not window.try_acquire()
    assert window.reserve() == pytest.approx(0.001)
    clock.advance(0.001)  # the first starts are now exactly a window old: half-open windows
    assert [window.try_acquire() for _ in range(4)] == [True, True, True, False]


def test_sliding_window_is_not_a_fixed_window(clock: FakeClock) -> None:
    # A fixed window of 60 s lets 3 through at 59 s and 3 more at 60 s; we must not.
    window = SlidingWindowLimiter(3, per=60, clock=clock)
    clock.advance(59)
    assert all(window.try_acquire() for _ in range(3))
    clock.advance(1)
    assert not window.try_acquire()
    clock.advance(58.5)
    assert not window.try_acquire()
    clock.advance(0.5)
    assert window.try_acquire()


def test_sliding_window_multi_token_delay(clock: FakeClock) -> None:
    window = SlidingWindowLimiter(4, per=10, clock=clock)
    for offset in (1, 1, 1, 1):
        assert window.try_acquire()
        clock.advance(offset)
    # Starts at 0, 1, 2, 3 and now is 4: three tokens need the starts at 0, 1 and 2 to
    # age out, which the one at 2 does at 12.
    assert window.reserve(3) == pytest.approx(8.0)
    clock.advance(7.9)
    assert not window.try_acquire(3)
    clock.advance(0.1)
    assert window.try_acquire(3)


def test_sliding_window_configure_keeps_history(clock: FakeClock) -> None:
    window = SlidingWindowLimiter(5, per=10, clock=clock)
    for _ in range(4):
        assert window.try_acquire()
    window.configure(2)
    assert not window.try_acquire()
    clock.advance(10)
    assert window.try_acquire()


# --- properties --------------------------------------------------------------------

_steps = st.lists(
    st.tuples(st.integers(min_value=0, max_value=3000), st.integers(min_value=0, max_value=4)),
    min_size=1,
    max_size=120,
)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=20),
    per_ms=st.integers(min_value=1, max_value=5000),
    burst=st.integers(min_value=1, max_value=8),
    steps=_steps,
)
def test_token_bucket_matches_exact_model_and_documented_bound(
    rate: int, per_ms: int, burst: int, steps: list[tuple[int, int]]
) -> None:
    """Every decision equals an exact rational model, and no interval of T seconds sees
    more than burst + rate * T / per starts."""
    clock = FakeClock()
    bucket = TokenBucket(rate=rate, per=per_ms / 1000, burst=burst, clock=clock)
    model_tokens = Fraction(burst)
    fill_per_ms = Fraction(rate, per_ms)
    now_ms = 0
    starts: list[int] = []
    for advance_ms, attempts in steps:
        now_ms += advance_ms
        clock.advance(advance_ms / 1000)
        model_tokens = min(Fraction(burst), model_tokens + advance_ms * fill_per_ms)
        for _ in range(attempts):
            expected = model_tokens >= 1
            assert bucket.try_acquire() is expected
            if expected:
                model_tokens -= 1
                starts.append(now_ms)
    for i in range(len(starts)):
        for j in range(i, len(starts)):
            allowed = burst + Fraction(rate * (starts[j] - starts[i]), per_ms)
            assert j - i + 1 <= allowed


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=10),
    per_ms=st.integers(min_value=1, max_value=5000),
    steps=_steps,
)
def test_sliding_window_never_exceeds_limit_in_any_window(
    limit: int, per_ms: int, steps: list[tuple[int, int]]
) -> None:
    """No half-open window of `per` seconds holds more than `limit` starts, and a start is
    refused only when the window really is full."""
    clock = FakeClock()
    window = SlidingWindowLimiter(limit, per=per_ms / 1000, clock=clock)
    now_ms = 0
    starts: list[int] = []
    for advance_ms, attempts in steps:
        now_ms += advance_ms
        clock.advance(advance_ms / 1000)
        for _ in range(attempts):
            in_window = sum(1 for s in starts if s > now_ms - per_ms)
            granted = window.try_acquire()
            assert granted is (in_window < limit)
            if granted:
                starts.append(now_ms)
    for i, first in enumerate(starts):
        assert sum(1 for s in starts[i:] if s < first + per_ms) <= limit


# --- contention --------------------------------------------------------------------


@pytest.mark.parametrize("limiter_kind", ["bucket", "window"])
def test_contention_grants_exactly_the_capacity(clock: FakeClock, limiter_kind: str) -> None:
    """8 threads racing for 1,000 tokens with time frozen: exactly 1,000 granted, none
    refused while tokens remained, none granted beyond."""
    limiter = (
        TokenBucket(rate=1, per=3600, burst=1000, clock=clock)
        if limiter_kind == "bucket"
        else SlidingWindowLimiter(1000, per=3600, clock=clock)
    )
    grants: list[list[bool]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def hammer(out: list[bool]) -> None:
        start.wait()
        out.extend(limiter.try_acquire() for _ in range(200))

    threads = [threading.Thread(target=hammer, args=(out,)) for out in grants]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    flat = [granted for out in grants for granted in out]
    assert flat.count(True) == 1000
    # Once a thread was refused, the tokens were gone: no refusal before a later grant.
    for out in grants:
        if False in out:
            assert True not in out[out.index(False) :]


def test_blocking_acquire_from_many_threads_hands_out_one_token_each(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=1, per=1, clock=clock)
    assert bucket.try_acquire()
    got: list[int] = []
    threads = [
        threading.Thread(target=lambda i=i: bucket.acquire() and got.append(i)) for i in range(5)
    ]
    for thread in threads:
        thread.start()
    for expected in range(1, 6):
        clock.advance(1)
        eventually(lambda expected=expected: len(got) == expected)
    for thread in threads:
        thread.join(10)
    assert sorted(got) == list(range(5))


@pytest.mark.parametrize("per", [0, -1, float("inf"), float("nan")])
def test_sliding_window_refuses_a_window_that_is_not_a_finite_positive_length(per: float) -> None:
    with pytest.raises(ValueError, match=f"per must be a finite number of seconds .* got {per}"):
        SlidingWindowLimiter(3, per=per)
