"""The ``isolation=`` task option: checked once, where it is declared, on every door."""

from __future__ import annotations

from typing import Any

import pytest

from jobq import ChildProcessDied, ChildTaskError, TaskTimeout
from jobq.job import Job, JobError, JobStatus
from jobq.task_options import TaskSettings
from jobq.task_registry import TaskRegistry
from jobq.worker.execute import Outcome
from jobq.worker.isolation.wire import decode_job, decode_outcome, encode_job, encode_outcome


def test_thread_is_the_default_and_process_is_kept() -> None:
    registry = TaskRegistry()

    @registry.task("plain")
    def plain() -> None: ...

    @registry.task("isolated", timeout=5, isolation="process")
    def isolated() -> None: ...

    assert plain.isolation == "thread"
    assert isolated.isolation == "process"
    assert TaskSettings.checked(isolation="process").isolation == "process"


@pytest.mark.parametrize("bad", ["Process", "fork", "", None, True])
def test_a_bad_isolation_names_the_option(bad: Any) -> None:
    registry = TaskRegistry()
    with pytest.raises(ValueError, match="isolation must be 'thread' or 'process'") as raised:
        registry.task("t", isolation=bad)
    assert repr(bad) in str(raised.value)
    assert len(registry) == 0


def test_the_flask_door_takes_the_same_option() -> None:
    flask_jobq = pytest.importorskip("flask_jobq")
    ext = flask_jobq.JobQ()

    @ext.task("isolated", isolation="process")
    def isolated() -> None: ...

    assert isolated.isolation == "process"
    with pytest.raises(ValueError, match="isolation must be"):
        ext.task("other", isolation="subprocess")


def test_errors_say_what_happened_to_the_child() -> None:
    assert "was killed after 60 s" in str(TaskTimeout(60, "report", killed=True))
    assert "killed" not in str(TaskTimeout(60, "report"))
    assert str(ChildProcessDied("SIGSEGV", None)) == (
        "the process running the task died with signal SIGSEGV before it finished"
    )
    assert "exited with status 3" in str(ChildProcessDied(None, 3))
    error = ChildTaskError("ValueError", "bad", "Traceback ...")
    assert (str(error), error.type_name, error.traceback_text) == (
        "ValueError: bad",
        "ValueError",
        "Traceback ...",
    )


def test_jobs_and_outcomes_cross_as_json_and_come_back_equal() -> None:
    job = Job(
        id=7,
        queue="mail",
        name="send",
        payload='{"args":[1],"kwargs":{}}',
        priority=3,
        status=JobStatus.PROCESSING,
        attempts=2,
        max_attempts=5,
        run_at=10.5,
        lease_owner="host:1:pool1",
        lease_token="token",
        lease_expires_at=40.5,
        error=JobError("ValueError", "x\u2028", "tb"),
        result=None,
        progress="0.5",
        unique_key="key",
        cancel_requested=True,
        created_at=1.25,
        started_at=10.75,
        finished_at=None,
        updated_at=10.75,
    )
    data = encode_job(job)
    assert data.startswith(b"{")
    assert decode_job(data) == job
    failed = Outcome("failed", error=JobError("KeyError", "'k'", "Traceback"), delay=2.0)
    back = decode_outcome(encode_outcome(failed))
    assert (back.kind, back.error, back.delay) == ("failed", failed.error, 2.0)
    assert isinstance(back.exception, ChildTaskError)
    done = decode_outcome(encode_outcome(Outcome("completed", result='{"a":1}')))
    assert (done.kind, done.result, done.exception) == ("completed", '{"a":1}', None)
