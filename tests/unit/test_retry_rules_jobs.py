"""Retry rules on real jobs: a queue on a real database, run one step at a time with
``run_until_empty`` and a fake clock (both backends through ``make_queue``)."""

from __future__ import annotations

from typing import Any

import pytest

import jobq
from jobq import DurableQueue, JobStatus, RetryRule, signals
from jobq import backoff as backoffs
from jobq.testing import FakeClock
from tests.helpers import MakeQueue

START = 1_800_000_000.0
TASK_BACKOFF = 100.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def queue(make_queue: MakeQueue, clock: FakeClock) -> DurableQueue:
    return make_queue(clock=clock)


class Heard:
    """The job_retrying and job_failed signals a queue sent, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def retrying(self, sender: object, **kwargs: Any) -> None:
        self.events.append(("retrying", kwargs))

    def failed(self, sender: object, **kwargs: Any) -> None:
        self.events.append(("failed", kwargs))

    @property
    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


@pytest.fixture
def heard(queue: DurableQueue) -> Any:
    listener = Heard()
    with (
        signals.job_retrying.connected_to(listener.retrying, sender=queue),
        signals.job_failed.connected_to(listener.failed, sender=queue),
    ):
        yield listener


def test_retry_on_uses_its_own_backoff_and_budget(
    queue: DurableQueue, clock: FakeClock, heard: Heard
) -> None:
    @queue.task(
        "sync",
        max_attempts=5,
        backoff=TASK_BACKOFF,
        retry_on={ConnectionError: RetryRule(attempts=3, backoff=backoffs.fixed(7))},
    )
    def sync() -> None:
        raise ConnectionRefusedError("api down")  # a subclass of the class named

    job = sync.enqueue()
    assert queue.run_until_empty() == 1
    first = queue.get(job.id)
    assert (first.status, first.run_at, first.attempts) == (JobStatus.PENDING, START + 7, 1)
    assert first.error is not None
    assert first.error.type == "ConnectionRefusedError"
    assert first.error.message == (
        "api down; retried by the retry_on rule for ConnectionError (at most 3 attempts)"
    )
    clock.advance(6)
    assert queue.run_until_empty() == 0
    clock.advance(1)
    assert queue.run_until_empty() == 1
    assert queue.get(job.id).run_at == START + 14
    clock.advance(7)
    assert queue.run_until_empty() == 1
    final = queue.get(job.id)
    assert (final.status, final.attempts) == (JobStatus.FAILED, 3)  # not the task's 5
    assert final.error is not None
    assert final.error.message == (
        "api down; not retried: the retry_on rule for ConnectionError allows 3 attempts"
    )
    assert heard.kinds == ["retrying", "retrying", "failed"]
    assert heard.events[0][1]["run_at"] == START + 7
    assert isinstance(heard.events[2][1]["exception"], ConnectionRefusedError)


def test_discard_on_fails_at_once_with_the_error_visible(
    queue: DurableQueue, heard: Heard, caplog: pytest.LogCaptureFixture
) -> None:
    @queue.task("import_row", max_attempts=5, discard_on=(ValueError,))
    def import_row(value: str) -> int:
        return int(value)

    job = import_row.enqueue("twelve")
    assert queue.run_until_empty() == 1
    failed = queue.get(job.id)
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert failed.error is not None
    assert failed.error.type == "ValueError"
    assert failed.error.message == (
        "invalid literal for int() with base 10: 'twelve'; not retried: ValueError is in discard_on"
    )
    assert failed.error.traceback is not None
    assert "int(value)" in failed.error.traceback
    assert heard.kinds == ["failed"]
    assert heard.events[0][1]["error"].message == failed.error.message
    assert any("not retried: ValueError is in discard_on" in r.getMessage() for r in caplog.records)


def test_exceptions_no_rule_names_follow_the_task_defaults(
    queue: DurableQueue, clock: FakeClock
) -> None:
    @queue.task(
        "mixed",
        max_attempts=2,
        backoff=TASK_BACKOFF,
        retry_on={TimeoutError: RetryRule(backoff=1)},
        discard_on=KeyError,
    )
    def mixed() -> None:
        raise RuntimeError("unexpected")

    job = mixed.enqueue()
    queue.run_until_empty()
    again = queue.get(job.id)
    assert (again.status, again.run_at) == (JobStatus.PENDING, START + TASK_BACKOFF)
    assert again.error is not None
    assert again.error.message == "unexpected"  # no rule applied: no note
    clock.advance(TASK_BACKOFF)
    queue.run_until_empty()
    assert queue.get(job.id).status is JobStatus.FAILED
    assert queue.get(job.id).attempts == 2


def test_the_most_specific_rule_wins(queue: DurableQueue, clock: FakeClock) -> None:
    raised: list[BaseException] = [ConnectionResetError("reset"), KeyError("gone")]

    @queue.task("only_network", max_attempts=3, retry_on={ConnectionError: 3}, discard_on=Exception)
    def only_network() -> None:
        raise raised.pop(0)

    job = only_network.enqueue()
    queue.run_until_empty()
    assert queue.get(job.id).status is JobStatus.PENDING
    clock.advance(3600)
    queue.run_until_empty()
    failed = queue.get(job.id)
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 2)
    assert failed.error is not None
    assert failed.error.message == "'gone'; not retried: KeyError matches Exception in discard_on"


def test_a_job_enqueued_with_fewer_attempts_keeps_them(queue: DurableQueue) -> None:
    @queue.task("capped", max_attempts=5, retry_on={OSError: 4})
    def capped() -> None:
        raise OSError("disk")

    job = capped.options(max_attempts=1).enqueue()
    queue.run_until_empty()
    failed = queue.get(job.id)
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert failed.error is not None
    assert failed.error.message.endswith("the retry_on rule for OSError allows 1 attempts")


def test_rule_backoff_by_attempt_number(queue: DurableQueue, clock: FakeClock) -> None:
    @queue.task(
        "grow",
        max_attempts=4,
        retry_on={TimeoutError: RetryRule(backoff=backoffs.exponential(base=5, jitter=False))},
    )
    def grow() -> None:
        raise TimeoutError("slow")

    job = grow.enqueue()
    waits = []
    for _ in range(3):
        queue.run_until_empty()
        waits.append(queue.get(job.id).run_at - clock.now())
        clock.advance(3600)
    assert waits == [5, 10, 20]


def test_transient_error_retry_after_wins_over_the_rule_backoff(
    queue: DurableQueue, clock: FakeClock
) -> None:
    @queue.task(
        "busy",
        max_attempts=5,
        retry_on={jobq.TransientError: RetryRule(attempts=2, backoff=7)},
        discard_on=Exception,
    )
    def busy() -> None:
        raise jobq.TransientError("429", retry_after=42)

    job = busy.enqueue()
    queue.run_until_empty()
    waiting = queue.get(job.id)
    assert (waiting.status, waiting.run_at) == (JobStatus.PENDING, START + 42)
    clock.advance(42)
    queue.run_until_empty()
    final = queue.get(job.id)
    assert (final.status, final.attempts) == (JobStatus.FAILED, 2)  # the rule's budget


def test_fail_and_retry_win_over_the_rules(queue: DurableQueue, clock: FakeClock) -> None:
    modes = ["snooze", "retry", "fail"]

    @queue.task("told", max_attempts=3, backoff=TASK_BACKOFF, retry_on={Exception: 3})
    def told() -> None:
        mode = modes.pop(0)
        if mode == "snooze":
            raise jobq.Retry(delay=5)
        if mode == "retry":
            raise jobq.Retry()  # the task's backoff, not counted
        raise jobq.Fail("stop here")

    job = told.enqueue()
    queue.run_until_empty()
    snoozed = queue.get(job.id)
    assert (snoozed.status, snoozed.run_at, snoozed.attempts) == (JobStatus.PENDING, START + 5, 0)
    clock.advance(5)
    queue.run_until_empty()
    retried = queue.get(job.id)
    assert (retried.run_at, retried.attempts) == (START + 5 + TASK_BACKOFF, 0)
    clock.advance(TASK_BACKOFF)
    queue.run_until_empty()
    failed = queue.get(job.id)
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert failed.error is not None
    assert failed.error.message == "stop here"  # no rule note: Fail decided


def test_discarding_the_task_timeout_of_an_inline_run(
    queue: DurableQueue, clock: FakeClock
) -> None:
    @queue.task("tick", max_attempts=3, discard_on=jobq.TaskTimeout)
    def tick() -> None:
        raise jobq.TaskTimeout(1, "tick")  # as a pool records a timed-out attempt

    job = tick.enqueue()
    queue.run_until_empty()
    failed = queue.get(job.id)
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert failed.error is not None
    assert failed.error.message.endswith("not retried: TaskTimeout is in discard_on")
