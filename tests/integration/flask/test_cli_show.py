"""``flask jobq show ID``: the same text as ``jobq show ID``, on the app's queue."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from flask_jobq import JobQ
from flask_jobq.state import state_for
from tests.integration.test_cli_show import _failed_twice


def test_flask_jobq_show(tmp_path: Path) -> None:
    db = str(tmp_path / "jobs.db")
    job_id = _failed_twice(db)
    app = Flask("show", instance_path=str(tmp_path / "instance"))
    app.config.update(TESTING=True, JOBQ_DATABASE=db, JOBQ_START_WORKERS=False)
    JobQ(app)
    try:
        result = app.test_cli_runner().invoke(args=["jobq", "show", str(job_id)])
        assert result.exit_code == 0, result.output
        assert "attempt 2  failed" in result.output
        result = app.test_cli_runner().invoke(args=["jobq", "show", "999"])
        assert result.exit_code != 0
    finally:
        state_for(app).close(timeout=5.0)
