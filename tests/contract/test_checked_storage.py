"""The storage contract's arguments are checked once, above every backend.

:class:`~jobq.storage.checked.CheckedStorage` refuses bad arguments and
answers the trivial calls itself, so a backend's parts only ever see valid
values. A backend whose parts fail on any call shows it: every call below
either raises the contract's error or returns without reaching a part.
(The contract suite shows that the real backends give these errors too.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from jobq.job import JobError, JobStatus
from jobq.storage.base import Completion, NewJob, RenewResult, Storage, TaskLimit
from jobq.storage.checked import CheckedStorage
from tests.contract._support import T0


class _Untouchable:
    """A backend part that fails the test if anything calls it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the backend was called ({name}) with arguments it should not see")


class _Recording:
    """A backend part that records each call and answers ``answer``."""

    def __init__(self, answer: Any) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._answer = answer

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self.calls.append((name, args))
            return self._answer

        return call


class _Backend(CheckedStorage):
    def __init__(self, part: Any) -> None:
        self._inserts = self._leases = self._admin = self._schedules = part

    def close(self) -> None:
        pass


def _untouchable() -> _Backend:
    return _Backend(_Untouchable())


BOOM = JobError("ValueError", "boom")
NAN = math.nan

REFUSED: list[tuple[str, Callable[[Storage], object], type[Exception], str]] = [
    (
        "enqueue bytes",
        lambda s: s.enqueue(NewJob("t", b"[]"), now=T0),  # type: ignore[arg-type]
        TypeError,
        "payload must be JSON text",
    ),
    ("enqueue bad now", lambda s: s.enqueue(NewJob("t", "[]"), now=NAN), ValueError, "now must"),
    (
        "enqueue_many entry",
        lambda s: s.enqueue_many([NewJob("t", "[]"), NewJob("", "[]")], now=T0),
        ValueError,
        r"name must be a non-empty str without NUL, got '' \(jobs\[1\]\)",
    ),
    (
        "enqueue_payloads",
        lambda s: s.enqueue_payloads(NewJob("t", ""), ["[]", 1], now=T0),  # type: ignore[list-item]
        TypeError,
        r"payload must be JSON text .* got int \(jobs\[1\]\)",
    ),
    (
        "claim a str",
        lambda s: s.claim("default", owner="w", now=T0, lease_seconds=30),
        TypeError,
        "queues must be a collection",
    ),
    (
        "claim limit",
        lambda s: s.claim(["q"], owner="w", now=T0, lease_seconds=30, limit=0),
        ValueError,
        "limit must be an integer from 1 to 1000, got 0",
    ),
    (
        "claim lease",
        lambda s: s.claim(["q"], owner="w", now=T0, lease_seconds=0),
        ValueError,
        "lease_seconds must be",
    ),
    (
        "claim owner",
        lambda s: s.claim(["q"], owner=1, now=T0, lease_seconds=30),  # type: ignore[arg-type]
        TypeError,
        "owner must be a str",
    ),
    (
        "claim limits",
        lambda s: s.claim(
            ["q"], owner="w", now=T0, lease_seconds=30, limits={"t": TaskLimit(concurrency=0)}
        ),
        ValueError,
        r"limits\['t'\].concurrency must be an integer >= 1",
    ),
    (
        "claim rate keys",
        lambda s: s.claim(
            ["q"],
            owner="w",
            now=T0,
            lease_seconds=30,
            limits={"a": TaskLimit(rate=1, rate_key="k"), "b": TaskLimit(rate=2, rate_key="k")},
        ),
        ValueError,
        "tasks sharing rate key 'k' give it different rates",
    ),
    ("has_runnable", lambda s: s.has_runnable([""], now=T0), ValueError, "a queue name must"),
    (
        "renew",
        lambda s: s.renew([(1, "t")], now=T0, lease_seconds=-1),
        ValueError,
        "lease_seconds must",
    ),
    (
        "set_progress",
        lambda s: s.set_progress(1, "t", {}, now=T0),  # type: ignore[arg-type]
        TypeError,
        "progress must be JSON text",
    ),
    (
        "complete",
        lambda s: s.complete(1, "t", now=T0, result=b"1"),  # type: ignore[arg-type]
        TypeError,
        "result must be JSON text",
    ),
    (
        "complete_many",
        lambda s: s.complete_many([Completion(1, "t", 1)], now=T0),  # type: ignore[arg-type]
        TypeError,
        "result must be JSON text",
    ),
    (
        "fail",
        lambda s: s.fail(1, "t", "boom", now=T0),  # type: ignore[arg-type]
        TypeError,
        "error must be a JobError",
    ),
    (
        "fail retry_at",
        lambda s: s.fail(1, "t", BOOM, now=T0, retry_at=NAN),
        ValueError,
        "retry_at must",
    ),
    ("release", lambda s: s.release(1, "t", now=T0, run_at=math.inf), ValueError, "run_at must"),
    ("finish_cancelled", lambda s: s.finish_cancelled(1, "t", now=NAN), ValueError, "now must"),
    (
        "rescue_expired",
        lambda s: s.rescue_expired(now=T0, limit=0),
        ValueError,
        "limit must be an integer of at least 1, got 0",
    ),
    ("request_cancel", lambda s: s.request_cancel(1, now=NAN), ValueError, "now must"),
    ("retry", lambda s: s.retry(1, now=T0, run_at=NAN), ValueError, "run_at must"),
    (
        "list_jobs",
        lambda s: s.list_jobs(limit=10_001),
        ValueError,
        "limit must be an integer from 1 to 10000",
    ),
    ("stats", lambda s: s.stats(now=NAN), ValueError, "now must"),
    ("oldest_runnable_age", lambda s: s.oldest_runnable_age(now=NAN), ValueError, "now must"),
    (
        "purge pending",
        lambda s: s.purge(older_than=T0, statuses=[JobStatus.PENDING]),
        ValueError,
        "purge deletes only completed, failed or cancelled jobs",
    ),
    ("pause", lambda s: s.pause("", now=T0), ValueError, "a queue name must"),
    ("resume", lambda s: s.resume("a\x00b"), ValueError, "a queue name must"),
    (
        "upsert_schedule name",
        lambda s: s.upsert_schedule("", "{}", T0, now=T0),
        ValueError,
        "a schedule name must be a non-empty str",
    ),
    (
        "upsert_schedule spec",
        lambda s: s.upsert_schedule("s", {}, T0, now=T0),  # type: ignore[arg-type]
        TypeError,
        "spec must be JSON text",
    ),
    (
        "fire_schedule job",
        lambda s: s.fire_schedule("s", T0, T0 + 60, [NewJob("t", "[]", max_attempts=0)], now=T0),
        ValueError,
        r"max_attempts must be an integer from 1 to \d+, got 0 \(jobs\[0\]\)",
    ),
    (
        "set_schedule_paused",
        lambda s: s.set_schedule_paused("s", True, now=T0, next_fire_at=NAN),
        ValueError,
        "next_fire_at must",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [pytest.param(call, error, message, id=label) for label, call, error, message in REFUSED],
)
def test_bad_arguments_are_refused_before_the_backend_sees_them(
    call: Callable[[Storage], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call(_untouchable())


def test_calls_with_nothing_to_do_are_answered_without_the_backend() -> None:
    storage = _untouchable()
    assert storage.claim([], owner="w", now=T0, lease_seconds=30) == []
    assert storage.has_runnable([], now=T0) is False
    assert storage.renew([], now=T0, lease_seconds=30) == RenewResult(
        frozenset(), frozenset(), frozenset()
    )
    assert storage.enqueue_many([], now=T0) == []
    assert storage.enqueue_payloads(NewJob("t", ""), [], now=T0) == []
    assert storage.complete_many([], now=T0) == []
    for unknown in (0, -1, 2**63, True):
        assert storage.get(unknown) is None


def test_the_backend_gets_the_checked_values() -> None:
    part = _Recording([])
    storage = _Backend(part)
    storage.claim(["a", "b", "a"], owner="w", now=T0, lease_seconds=30, limit=5, limits={})
    storage.renew(iter([(1, "t")]), now=T0, lease_seconds=30)
    storage.purge(older_than=T0, statuses=["failed", JobStatus.COMPLETED])  # type: ignore[list-item]
    assert part.calls == [
        ("claim", (["a", "b"], "w", T0, 30, 5, None, None)),  # each queue once; no limits
        ("renew", ([(1, "t")], T0, 30)),  # a list, even from an iterator
        ("purge", (T0, [JobStatus.COMPLETED, JobStatus.FAILED], 1000)),
    ]
