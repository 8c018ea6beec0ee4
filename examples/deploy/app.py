"""A Flask app set up for deployment: one task, one route that enqueues it.

Settings come from the environment through ``app.config.from_prefixed_env()``:
``FLASK_JOBQ_DATABASE`` (default ``instance/jobq.db``), and
``FLASK_JOBQ_START_WORKERS=false`` for web processes whose jobs run in a
separate ``flask --app app jobq worker``.
"""

from flask import Flask

from flask_jobq import JobQ

jobq_ext = JobQ()


@jobq_ext.task(max_attempts=5)
def build_report(account_id: int) -> dict[str, int]:
    """Stand-in for slow work: a report of ``account_id``."""
    return {"account_id": account_id, "rows": 42}


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.from_prefixed_env()  # FLASK_JOBQ_DATABASE=... sets JOBQ_DATABASE
    jobq_ext.init_app(app)

    @app.post("/reports/<int:account_id>")
    def request_report(account_id: int) -> tuple[dict[str, int], int]:
        job = build_report.enqueue(account_id)
        return {"job": job.id}, 202

    return app


app = create_app()
