"""The app tests/integration/flask/test_metrics_gunicorn.py serves with a real gunicorn
(``-c tests/integration/flask/_metrics_gunicorn_conf.py``).

Environment: ``JOBQ_METRICS_DB`` (the SQLite file), ``JOBQ_METRICS_TOKEN`` (the
bearer token of ``/jobq/metrics``) and ``PROMETHEUS_MULTIPROC_DIR``. Routes:
``POST /enqueue`` stores one ``noop`` job; every answer carries ``X-Served-By``,
the pid of the process that answered. The JSON monitor allows 127.0.0.1.
"""

from __future__ import annotations

import os

from flask import Flask, Response, request

from flask_jobq import JobQ

jobq_ext = JobQ()


@jobq_ext.task("noop")
def noop(number: int) -> int:
    return number


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(
        JOBQ_DATABASE=os.environ["JOBQ_METRICS_DB"],
        JOBQ_CONCURRENCY=2,
        JOBQ_MONITOR_AUTH=lambda: request.remote_addr == "127.0.0.1",
        JOBQ_METRICS=True,
        JOBQ_METRICS_AUTH=os.environ["JOBQ_METRICS_TOKEN"],
    )
    jobq_ext.init_app(app)

    @app.post("/enqueue")
    def enqueue() -> dict[str, int]:
        return {"id": noop.enqueue(request.args.get("n", 0, type=int)).id}

    @app.after_request
    def served_by(response: Response) -> Response:
        response.headers["X-Served-By"] = str(os.getpid())
        return response

    return app
