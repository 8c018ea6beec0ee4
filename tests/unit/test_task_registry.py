"""The one task registry: options checked once whichever door declares a task, and the
``check=`` hook refusing arguments at every enqueue door before anything is stored."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import jobq
from flask_jobq import JobQ, state_for
from jobq import DurableQueue
from jobq.task_registry import TaskRegistry
from jobq.tasks import TaskSettings
from tests.helpers import MakeQueue


def _positive_amount(call: Mapping[str, Any]) -> None:
    if call["amount"] <= 0:
        raise ValueError(f"amount must be above 0, got {call['amount']!r}")


@pytest.fixture
def queue(make_queue: MakeQueue) -> DurableQueue:
    return make_queue()


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"timeout": "5"}, ValueError, "timeout must be a finite number of seconds"),
        ({"timeout": float("inf")}, ValueError, "timeout must be a finite number"),
        ({"timeout": True}, ValueError, "timeout must be"),
        ({"max_attempts": 0}, ValueError, "max_attempts must be an integer of at least 1"),
        ({"priority": "high"}, TypeError, "priority must be an integer"),
        ({"queue": ""}, ValueError, "queue must be a non-empty string"),
        ({"rate_limit": "fast"}, ValueError, "rate_limit must look like"),
        ({"check": "yes"}, TypeError, "check must be a callable"),
    ],
)
def test_both_doors_refuse_a_bad_option_with_the_same_error(
    queue: DurableQueue, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as core:
        queue.task("t", **options)
    with pytest.raises(error, match=message) as flask:
        JobQ().task("t", **options)
    assert str(core.value) == str(flask.value)


def test_a_flask_task_is_added_to_each_queue_as_declared(tmp_path: Path) -> None:
    ext = JobQ()

    @ext.task(
        "report",
        max_attempts=7,
        priority=3,
        queue="reports",
        timeout=9.0,
        rate_limit="5/m",
        check=_positive_amount,
    )
    def report(amount: int) -> int:
        return amount

    app = Flask("app", instance_path=str(tmp_path / "instance"))
    ext.init_app(app)
    try:
        registered = state_for(app).queue.tasks["report"]
        assert registered.settings is report.settings  # the declaration itself, not a copy
        assert registered.fn is report.fn
        assert registered.owner is state_for(app).queue
        assert state_for(app).queue.task_limits["report"] == jobq.storage.TaskLimit(None, 5, 60.0)
        with app.app_context(), pytest.raises(ValueError, match="cannot enqueue report: amount"):
            report.enqueue(0)
        assert state_for(app).queue.list() == []
    finally:
        state_for(app).close(timeout=5.0)
        jobq.configure(None)


def test_check_refuses_bad_arguments_at_every_door_and_stores_nothing(queue: DurableQueue) -> None:
    calls: list[Mapping[str, Any]] = []

    def check(call: Mapping[str, Any]) -> None:
        calls.append(dict(call))
        _positive_amount(call)

    @queue.task("pay", check=check)
    def pay(amount: int, currency: str = "EUR") -> str:
        return f"{amount} {currency}"

    doors = [
        lambda: pay.enqueue(-1),
        lambda: pay.options(delay=5).enqueue(amount=0),
        lambda: pay.enqueue_many([(3,), (-2,)]),
        lambda: pay.options(priority=2).enqueue_many([{"amount": -2}]),
        lambda: queue.enqueue("pay", -1),
        lambda: queue.enqueue_many("pay", [(-1,)]),
        lambda: queue.schedule("pay", every=60, args=[-5]),
    ]
    for door in doors:
        with pytest.raises(ValueError, match=r"cannot enqueue pay: amount must be above 0"):
            door()
    assert queue.list() == []
    assert queue.declared_schedules == {}
    assert calls[0] == {"amount": -1, "currency": "EUR"}  # bound, defaults filled in

    assert pay.enqueue(5).status is jobq.JobStatus.PENDING
    assert queue.run_until_empty() == 1
    # A call that does not fit the signature is a TypeError before the check runs.
    seen = len(calls)
    with pytest.raises(TypeError, match="cannot enqueue pay"):
        pay.enqueue(1, 2, 3)  # type: ignore[call-arg]
    assert len(calls) == seen


def test_jobq_submit_goes_through_the_check(queue: DurableQueue) -> None:
    @queue.task("pay", check=_positive_amount)
    def pay(amount: int) -> None: ...

    jobq.configure(queue)
    try:
        with pytest.raises(ValueError, match="cannot enqueue pay"):
            jobq.submit("pay", 0)
        with pytest.raises(ValueError, match="cannot enqueue pay"):
            jobq.submit(pay, 0)
    finally:
        jobq.configure(None)
    assert queue.list() == []


def test_a_registry_without_a_queue_holds_declarations_only() -> None:
    registry = TaskRegistry(door="@blueprint.task")

    @registry.task("alone", max_attempts=2)
    def alone() -> None: ...

    assert registry.get("alone") is alone
    assert alone.settings == TaskSettings(max_attempts=2, backoff=alone.backoff)
    with pytest.raises(RuntimeError, match="bound to no queue"):
        alone.enqueue()
    with pytest.raises(TypeError, match=r"use @blueprint.task\(\) with parentheses"):
        registry.task(alone)  # type: ignore[arg-type]
    with pytest.raises(jobq.ConfigurationError, match=r"@blueprint.task\(name=...\)"):

        @registry.task("alone")
        def other() -> None: ...
