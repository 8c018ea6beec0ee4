"""Retry rules by exception: how ``retry_on``/``discard_on`` are checked and matched."""

from __future__ import annotations

from typing import Any

import pytest

import jobq
from jobq import backoff as backoffs
from jobq.retry_rules import RetryRule, RetryRules
from jobq.task_options import TaskSettings


def rules(retry_on: Any = None, discard_on: Any = None, max_attempts: int = 5) -> RetryRules:
    made = RetryRules.checked(retry_on, discard_on, max_attempts=max_attempts)
    assert made is not None
    return made


def test_no_rules_is_none_and_the_task_keeps_its_defaults() -> None:
    assert RetryRules.checked(None, None, max_attempts=3) is None
    assert RetryRules.checked((), [], max_attempts=3) is None
    assert TaskSettings.checked().retry_rules is None


def test_every_form_of_retry_on() -> None:
    one = rules(ConnectionError)
    assert one.retry_on == {ConnectionError: RetryRule()}
    several = rules([TimeoutError, ConnectionError])
    assert set(several.retry_on) == {TimeoutError, ConnectionError}
    slow = backoffs.fixed(7)
    mapped = rules(
        {
            ConnectionError: RetryRule(attempts=4, backoff=slow),
            (TimeoutError, BrokenPipeError): 2,
            KeyError: RetryRule(backoff=30),
        }
    )
    assert mapped.retry_on[ConnectionError].delay is slow
    assert mapped.retry_on[TimeoutError] == RetryRule(attempts=2)
    assert mapped.retry_on[BrokenPipeError] is mapped.retry_on[TimeoutError]
    keyed = mapped.retry_on[KeyError].delay
    assert keyed is not None
    assert keyed(9) == 30.0
    assert rules(discard_on=ValueError).discard_on == {ValueError}


def test_the_most_specific_class_wins_whatever_the_option() -> None:
    made = rules(retry_on=(ConnectionError,), discard_on=(Exception,))
    refused = made.decide(ConnectionRefusedError("no"), attempts=1, max_attempts=5)
    assert refused is not None
    assert refused.retry
    assert refused.note == "retried by the retry_on rule for ConnectionError (at most 5 attempts)"
    other = made.decide(KeyError("k"), attempts=1, max_attempts=5)
    assert other is not None
    assert not other.retry
    assert other.note == "not retried: KeyError matches Exception in discard_on"
    inverse = rules(retry_on={OSError: 3}, discard_on=(ConnectionError,))
    lost = inverse.decide(ConnectionResetError(), attempts=1, max_attempts=5)
    assert lost is not None
    assert not lost.retry
    disk = inverse.decide(FileNotFoundError(), attempts=1, max_attempts=5)
    assert disk is not None
    assert disk.retry
    assert made.decide(BaseException(), attempts=1, max_attempts=5) is None


def test_exact_discard_note_and_unnamed_exceptions() -> None:
    made = rules(discard_on=(ValueError,))
    discarded = made.decide(ValueError("bad"), attempts=1, max_attempts=3)
    assert discarded is not None
    assert (discarded.retry, discarded.note) == (False, "not retried: ValueError is in discard_on")
    assert made.decide(RuntimeError(), attempts=1, max_attempts=3) is None


def test_budget_counts_every_attempt_and_is_capped_by_the_job() -> None:
    made = rules({TimeoutError: RetryRule(attempts=3, backoff=1)}, max_attempts=5)
    assert [made.decide(TimeoutError(), attempts=n, max_attempts=5).retry for n in (1, 2, 3)] == [  # type: ignore[union-attr]
        True,
        True,
        False,
    ]
    last = made.decide(TimeoutError(), attempts=3, max_attempts=5)
    assert last is not None
    assert last.note == "not retried: the retry_on rule for TimeoutError allows 3 attempts"
    # A job enqueued with a smaller max_attempts keeps it: a rule never widens it.
    capped = made.decide(TimeoutError(), attempts=2, max_attempts=2)
    assert capped is not None
    assert not capped.retry


def test_transient_errors_are_matched_by_retry_on_but_never_discarded() -> None:
    class Busy(jobq.TransientError):
        pass

    made = rules(retry_on={Busy: 2}, discard_on=(Exception,))
    first = made.decide(Busy("busy"), attempts=1, max_attempts=5)
    assert first is not None
    assert first.retry
    assert made.decide(jobq.TransientError("x"), attempts=1, max_attempts=5) is None
    with pytest.raises(ValueError, match="discard_on cannot name Busy: a TransientError"):
        rules(discard_on=Busy)


def test_task_timeout_can_be_named() -> None:
    made = rules(discard_on=(jobq.TaskTimeout,))
    timed_out = made.decide(jobq.TaskTimeout(5, "t"), attempts=1, max_attempts=3)
    assert timed_out is not None
    assert not timed_out.retry
    # TaskTimeout is a TimeoutError: a rule for TimeoutError covers it.
    broad = rules(retry_on={TimeoutError: 2})
    assert broad.decide(jobq.TaskTimeout(5, "t"), attempts=1, max_attempts=3) is not None


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"retry_on": "ValueError"}, TypeError, "retry_on must be an exception class or a tuple"),
        ({"retry_on": (ValueError, 3)}, TypeError, "retry_on must name exception classes, got 3"),
        (
            {"retry_on": (int,)},
            TypeError,
            "retry_on must name exception classes, got <class 'int'>",
        ),
        ({"discard_on": 7}, TypeError, "discard_on must be an exception class or a tuple"),
        ({"discard_on": {ValueError: 1}}, TypeError, "discard_on must be an exception class"),
        (
            {"retry_on": {ValueError: "3"}},
            TypeError,
            r"retry_on\[ValueError\] must be a jobq.RetryRule",
        ),
        (
            {"retry_on": {ValueError: 0}},
            ValueError,
            r"retry_on\[ValueError\] \(an attempt budget\)",
        ),
        ({"retry_on": {ValueError: True}}, TypeError, r"retry_on\[ValueError\] must be"),
        ({"retry_on": {"x": 2}}, TypeError, "retry_on must be an exception class or a tuple"),
        ({"retry_on": {ValueError: 9}}, ValueError, r"allows 9 attempts, more than the task's max"),
        ({"retry_on": (ValueError, ValueError)}, ValueError, "retry_on names the same exception"),
        (
            {"retry_on": {ValueError: 2, (KeyError, ValueError): 2}},
            ValueError,
            "names ValueError twice",
        ),
        ({"discard_on": (KeyError, KeyError)}, ValueError, "discard_on names the same exception"),
        ({"retry_on": KeyError, "discard_on": KeyError}, ValueError, "KeyError is in both"),
        ({"retry_on": jobq.Retry}, ValueError, "retry_on cannot name Retry"),
        ({"discard_on": (jobq.Fail,)}, ValueError, "discard_on cannot name Fail"),
        ({"discard_on": jobq.TransientError}, ValueError, "discard_on cannot name TransientError"),
    ],
)
def test_bad_options_are_refused_naming_the_option(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        TaskSettings.checked(max_attempts=5, **options)


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="RetryRule attempts must be an integer of at least 1"):
        RetryRule(attempts=0)
    with pytest.raises(TypeError, match="backoff must be seconds, a callable"):
        RetryRule(backoff="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 0 seconds"):
        RetryRule(backoff=-1)


def test_a_bad_option_registers_nothing(tmp_path: Any) -> None:
    queue = jobq.DurableQueue(tmp_path / "jobs.db")
    try:
        with pytest.raises(TypeError, match="discard_on must name exception classes"):

            @queue.task("x", discard_on=("ValueError",))  # type: ignore[arg-type]
            def x() -> None: ...

        assert "x" not in queue.tasks
        made = queue.task("y", retry_on={OSError: 2}, discard_on=ValueError)(lambda: None)
        assert made.retry_rules is not None
        assert hash(made.settings) == hash(made.settings)  # settings stay hashable
        assert made.retry_rules.retry_on == {OSError: RetryRule(attempts=2)}
    finally:
        queue.close()
