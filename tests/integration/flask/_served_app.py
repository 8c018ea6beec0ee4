"""The app tests/integration/flask/test_serving_processes.py serves with real servers,
to which no request is ever sent.

``create_app()`` reads ``JOBQ_SERVED_DIR``, a folder holding the queue's SQLite file
``jobq.db`` and a ledger where each process appends, to files named after its pid:

- ``started-PID.txt``: one line per worker pool started (the ``worker_started``
  signal);
- ``jobs-PID.txt``: ``job_id pid`` for each run of the ``record`` task.

The ``tick`` schedule (every second) enqueues ``record``. Run as
``python -m tests.integration.flask._served_app PORT [debug]`` it serves with
``app.run()`` on 127.0.0.1.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from flask import Flask

import jobq
from flask_jobq import JobQ, signals

jobq_ext = JobQ()
_write_lock = threading.Lock()


def _append(kind: str, line: str) -> None:
    folder = Path(os.environ["JOBQ_SERVED_DIR"])
    with _write_lock, open(folder / f"{kind}-{os.getpid()}.txt", "a") as file:
        file.write(line + "\n")


@jobq_ext.task("record")
def record() -> int:
    job = jobq.current_job()
    _append("jobs", f"{job.id if job is not None else 0} {os.getpid()}")
    return os.getpid()


def create_app() -> Flask:
    folder = Path(os.environ["JOBQ_SERVED_DIR"])
    app = Flask(__name__, instance_path=str(folder / "instance"))
    app.config.update(
        JOBQ_DATABASE=str(folder / "jobq.db"),
        JOBQ_CONCURRENCY=1,
        JOBQ_SCHEDULES={"tick": {"task": "record", "every": 1}},
    )
    jobq_ext.init_app(app)

    # Connected after init_app, as an app's own code would be: workers start only
    # once the app is built, so this receiver sees every start.
    @signals.worker_started.connect_via(app, weak=False)
    def started(sender: Flask, **kwargs: object) -> None:
        _append("started", str(os.getpid()))

    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=int(sys.argv[1]), debug=sys.argv[2:] == ["debug"])
