"""A task's ``limit_key``: checked when declared, computed from the arguments at
every enqueue door and stored on the job; a key that cannot be computed fails the
enqueue and stores nothing. (Claims per key: tests/contract/test_storage_key_limits.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import jobq
from flask_jobq import JobQ, state_for
from jobq import DurableQueue
from jobq.storage.base import TaskLimit
from jobq.testing import FakeClock
from tests.helpers import MakeQueue


@pytest.fixture
def queue(make_queue: MakeQueue) -> DurableQueue:
    return make_queue()


def keys(queue: DurableQueue) -> list[str | None]:
    return [job.limit_key for job in sorted(queue.list(), key=lambda job: job.id)]


def test_a_callable_or_a_parameter_name_gives_each_job_its_key(queue: DurableQueue) -> None:
    @queue.task("sync", concurrency_limit=1, limit_key=lambda account_id, **_: account_id)
    def sync(account_id: int, full: bool = False) -> None: ...

    @queue.task("crm", rate_limit="10/m", limit_key="tenant")
    def crm(contact: int, tenant: str = "default") -> None: ...

    assert sync.enqueue(42, full=True).limit_key == "42"  # an int becomes a str
    assert sync.options(priority=3).enqueue(account_id=7).limit_key == "7"
    assert crm.enqueue(1).limit_key == "default"  # the parameter's default
    assert crm.enqueue(2, tenant="acme").limit_key == "acme"
    assert queue.enqueue("crm", 3, "beta").limit_key == "beta"
    assert queue.task_limits["sync"] == TaskLimit(concurrency=1, per_key=True)
    assert queue.task_limits["crm"] == TaskLimit(None, 10, 60.0, None, True)


def test_enqueue_many_and_schedules_store_each_calls_key(
    make_queue: MakeQueue, clock: FakeClock
) -> None:
    queue = make_queue(clock=clock)

    @queue.task("sync", concurrency_limit=1, limit_key=lambda account_id: account_id or None)
    def sync(account_id: int) -> None: ...

    sync.enqueue_many([(1,), {"account_id": 2}, (0,)])
    sync.options(delay=5).enqueue_many([(3,)])
    queue.enqueue_many("sync", [(4,)])
    assert keys(queue) == ["1", "2", None, "3", "4"]  # None: the keyless group
    queue.schedule(sync, every=60, args=[9], name="nine")
    clock.advance(61)
    assert len(queue.fire_due_schedules()) == 1
    assert keys(queue)[-1] == "9"


@pytest.mark.parametrize(
    ("limit_key", "error", "message"),
    [
        (lambda a: str(1 // a), ValueError, "its limit_key raised ZeroDivisionError"),
        (lambda a: a or {}, TypeError, r"its limit_key gave \{\} \(dict\)"),
        (lambda a: a or True, TypeError, r"gave True \(bool\); it must give a str, an int or None"),
        (lambda a: a or "", ValueError, "a key is a non-empty str"),
        (lambda a: a or "x" * 201, ValueError, "at most 200 characters"),
        (lambda a: a or "tab\there", ValueError, "without control characters"),
        (lambda *a: a[1], ValueError, "its limit_key raised IndexError"),
    ],
)
def test_a_key_that_cannot_be_computed_fails_every_door_and_stores_nothing(
    queue: DurableQueue, limit_key: Any, error: type[Exception], message: str
) -> None:
    @queue.task("t", concurrency_limit=1, limit_key=limit_key)
    def t(a: int) -> None: ...

    doors = [
        lambda: t.enqueue(0),
        lambda: t.options(delay=5).enqueue(0),
        lambda: t.enqueue_many([(5,), (0,)]),
        lambda: queue.enqueue("t", 0),
        lambda: queue.schedule(t, every=60, args=[0]),
    ]
    for door in doors:
        with pytest.raises(error, match=message):
            door()
    assert queue.list() == []
    assert queue.declared_schedules == {}


def test_bad_declarations_are_refused_with_what_to_do(queue: DurableQueue) -> None:
    with pytest.raises(ValueError, match="limit_key needs a concurrency_limit or a rate_limit"):
        queue.task("t", limit_key="a")
    with pytest.raises(TypeError, match=r"limit_key must be a callable .* or the name of one"):
        queue.task("t", concurrency_limit=1, limit_key=5)
    with pytest.raises(ValueError, match=r"limit_key='acount' of task t names none of its "):

        @queue.task("t", concurrency_limit=1, limit_key="acount")
        def t(account: int, *rest: int, **more: int) -> None: ...

    with pytest.raises(ValueError, match=r"names none of its parameters \(account\)"):

        @queue.task("u", concurrency_limit=1, limit_key="more")
        def u(account: int, **more: int) -> None: ...


def test_tasks_sharing_a_rate_key_must_all_be_per_key_or_none(queue: DurableQueue) -> None:
    @queue.task("push", rate_limit="5/s", rate_limit_key="api", limit_key="tenant")
    def push(tenant: str) -> None: ...

    with pytest.raises(jobq.ConfigurationError, match="task pull: tasks sharing rate key 'api'"):

        @queue.task("pull", rate_limit="5/s", rate_limit_key="api")
        def pull(tenant: str) -> None: ...

    assert "pull" not in queue.tasks


def test_keyed_jobs_run_one_per_key_in_a_worker(queue: DurableQueue) -> None:
    ran: list[str] = []

    @queue.task("sync", concurrency_limit=1, limit_key="account")
    def sync(account: str) -> None:
        ran.append(account)

    sync.enqueue_many([("a",), ("a",), ("b",)])
    assert queue.run_until_empty() == 3
    assert sorted(ran) == ["a", "a", "b"]


def test_the_flask_extension_takes_limit_key(tmp_path: Path) -> None:
    ext = JobQ()

    @ext.task("sync", concurrency_limit=1, limit_key="account")
    def sync(account: int) -> None: ...

    app = Flask("app", instance_path=str(tmp_path / "instance"))
    ext.init_app(app)
    try:
        queue = state_for(app).queue
        assert queue.task_limits["sync"] == TaskLimit(concurrency=1, per_key=True)
        with app.app_context():
            assert sync.enqueue(5).limit_key == "5"
    finally:
        state_for(app).close(timeout=5.0)
        jobq.configure(None)


def test_jobq_show_prints_the_limit_key(queue: DurableQueue) -> None:
    from jobq.cli.show import show_job

    @queue.task("sync", concurrency_limit=1, limit_key="account")
    def sync(account: int) -> None: ...

    keyed = sync.enqueue(42)
    assert "  limit key  42" in show_job(queue, keyed.id).splitlines()
    assert '"limit_key": "42"' in show_job(queue, keyed.id, as_json=True)
