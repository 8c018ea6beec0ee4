"""The app tests/integration/flask/test_gunicorn.py serves with a real gunicorn.

``gunicorn 'tests.integration.flask._gunicorn_app:create_app()'`` with two environment
variables:

- ``JOBQ_GUNICORN_DB``: the queue's SQLite file;
- ``JOBQ_GUNICORN_DRIVER``: ``JOBQ_DRIVER`` (default ``sqlite3``);
- ``JOBQ_GUNICORN_LEDGER``: a folder where each process appends, to files named
  after its pid (so no two processes ever write the same file):

  - ``created-PID.txt``: one line per ``create_app()`` in that process;
  - ``jobs-PID.txt``: ``job_id pid`` for each run of the ``record`` task (the
    queue itself is never the witness of how often a job ran);
  - ``signals-PID.txt``: ``signal job_id pid`` for each flask_jobq signal
    received (``-`` for the job id of signals that carry no job).

Routes: ``POST /enqueue`` (``?seconds=`` how long the job sleeps) stores one
``record`` job and answers ``{"id": job_id, "pid": serving_pid}``; ``GET /pid``
answers ``{"pid": ...}``.
The monitor (``/jobq``) allows requests from 127.0.0.1 only.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from flask import Flask, request

import jobq
from flask_jobq import JobQ, signals

JOB_SECONDS = 0.002  # short, so that the workers of a pool overlap a little

jobq_ext = JobQ()
_write_lock = threading.Lock()  # one writer at a time per process (worker threads + requests)


def _ledger() -> Path:
    return Path(os.environ["JOBQ_GUNICORN_LEDGER"])


def _append(kind: str, line: str) -> None:
    with _write_lock, open(_ledger() / f"{kind}-{os.getpid()}.txt", "a") as file:
        file.write(line + "\n")


@jobq_ext.task("record")
def record(seconds: float = JOB_SECONDS) -> int:
    _append("jobs", f"{jobq.current_job().id} {os.getpid()}")
    time.sleep(seconds)
    return os.getpid()


_RECORDED = (
    signals.job_enqueued,
    signals.job_started,
    signals.job_succeeded,
    signals.job_failed,
    signals.job_retrying,
    signals.job_cancelled,
    signals.job_lease_expired,
    signals.worker_started,
    signals.worker_stopped,
)


def _connect_recorders(app: Flask) -> None:
    for signal in _RECORDED:

        def receiver(sender: Flask, _name: str = signal.name, **kwargs: Any) -> None:
            job = kwargs.get("job")
            _append("signals", f"{_name} {job.id if job is not None else '-'} {os.getpid()}")

        signal.connect(receiver, sender=app, weak=False)


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(
        JOBQ_DATABASE=os.environ["JOBQ_GUNICORN_DB"],
        JOBQ_DRIVER=os.environ.get("JOBQ_GUNICORN_DRIVER", "sqlite3"),
        JOBQ_CONCURRENCY=2,
        JOBQ_MONITOR_AUTH=lambda: request.remote_addr == "127.0.0.1",
    )
    jobq_ext.init_app(app)
    _connect_recorders(app)
    _append("created", str(os.getpid()))

    @app.post("/enqueue")
    def enqueue() -> dict[str, int]:
        seconds = request.args.get("seconds", JOB_SECONDS, type=float)
        return {"id": record.enqueue(seconds).id, "pid": os.getpid()}

    @app.get("/pid")
    def pid() -> dict[str, int]:
        return {"pid": os.getpid()}

    return app
