"""``flask jobq enqueue NAME``: the same job as ``jobq enqueue NAME``, on the app's queue."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from flask_jobq import JobQ
from flask_jobq.state import state_for


def test_flask_jobq_enqueue(tmp_path: Path) -> None:
    app = Flask("enqueue", instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True, JOBQ_DATABASE=str(tmp_path / "jobs.db"), JOBQ_START_WORKERS=False
    )
    JobQ(app)
    try:
        runner = app.test_cli_runner()
        result = runner.invoke(
            args=["jobq", "enqueue", "reports.build", "--args", "[7]", "--expires-in", "1h"]
        )
        assert result.exit_code == 0, result.output
        assert "enqueued: reports.build in queue default" in result.output
        (job,) = state_for(app).queue.list()
        assert (job.name, job.decoded_payload()["args"]) == ("reports.build", [7])
        assert job.expires_at is not None
        after = ["jobq", "enqueue", "reports.send", "--depends-on", str(job.id)]
        result = runner.invoke(args=[*after, "--on-dependency-failure", "fail"])
        assert result.exit_code == 0, result.output
        waiting = state_for(app).queue.list()[-1]
        assert (waiting.waiting_for, waiting.on_dependency_failure) == (1, "fail")
        result = runner.invoke(args=["jobq", "enqueue", "reports.build", "--kwargs", "[]"])
        assert result.exit_code == 2
        assert "--kwargs must be a JSON object" in result.output
    finally:
        state_for(app).close(timeout=5.0)
