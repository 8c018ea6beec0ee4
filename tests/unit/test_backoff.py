"""Retry delays."""

from __future__ import annotations

import pytest

from jobq import backoff


def test_fixed() -> None:
    assert [backoff.fixed(5)(n) for n in (1, 2, 10)] == [5, 5, 5]
    with pytest.raises(ValueError, match="at least 0 seconds"):
        backoff.fixed(-1)


def test_exponential_doubles_up_to_the_cap() -> None:
    delay = backoff.exponential(base=1, cap=10, jitter=False)
    assert [delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert delay(10_000) == 10  # no overflow on absurd attempt numbers


def test_jitter_stays_between_half_and_all_of_the_delay() -> None:
    low = backoff.exponential(base=4, jitter=True, rng=lambda: 0.0)
    high = backoff.exponential(base=4, jitter=True, rng=lambda: 0.999999)
    assert low(2) == 4.0
    assert 7.99 < high(2) < 8.0


def test_resolve() -> None:
    assert backoff.resolve(3)(7) == 3.0
    assert backoff.resolve(lambda n: n * 10.0)(2) == 20.0
    assert 1.0 <= backoff.resolve(None)(1) <= 2.0
    with pytest.raises(TypeError, match="backoff must be seconds"):
        backoff.resolve("soon")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"base": 0}, "base must be"), ({"factor": 0.5}, "factor must be"), ({"cap": 1}, "cap must")],
)
def test_exponential_rejects_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        backoff.exponential(**kwargs)
