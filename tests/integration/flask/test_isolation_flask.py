"""A process-isolated task of a Flask app runs inside the app's context in its child."""

from __future__ import annotations

import os
from typing import Any

from flask import current_app

from flask_jobq import JobQ, state_for
from tests.helpers import BOUNDED_WAIT, AppFactory, wait_for


def test_an_isolated_task_reads_current_app_in_its_child(make_app: AppFactory, ext: JobQ) -> None:
    @ext.task("whoami", isolation="process")
    def whoami() -> dict[str, Any]:
        return {
            "app": current_app.name,
            "greeting": current_app.config["GREETING"],
            "pid": os.getpid(),
        }

    app = make_app("isolated", JOBQ_START_WORKERS=False, JOBQ_POLL_INTERVAL=0.01, GREETING="hi")
    state = state_for(app)
    assert state.queue.tasks["whoami"].isolation == "process"
    with app.app_context():
        job = whoami.enqueue()
    pool = state.start_workers()
    try:
        wait_for(lambda: state.queue.get(job.id).status.is_final, "the job ended")
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)
    done = state.queue.get(job.id)
    assert done.error is None
    result = done.decoded_result()
    assert result["pid"] != os.getpid()
    assert (result["app"], result["greeting"]) == ("isolated", "hi")
