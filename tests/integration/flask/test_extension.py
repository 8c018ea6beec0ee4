"""JobQ.init_app, per-app queues, tasks enqueued from requests, worker start rules."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from flask import Flask, current_app

import jobq
from flask_jobq import FlaskTask, JobQ, JobQState, state_for
from tests.helpers import AppFactory, drop_postgres_schema, eventually, postgres_schema_url


def _jobq_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("jobq-") and t.is_alive()]


def _wait_done(queue: jobq.DurableQueue, job_id: int) -> jobq.Job:
    final = {jobq.JobStatus.COMPLETED, jobq.JobStatus.FAILED, jobq.JobStatus.CANCELLED}
    eventually(lambda: queue.get(job_id).status in final)
    return queue.get(job_id)


def test_init_app_sets_defaults_and_the_first_use_creates_the_instance_folder(
    tmp_path: Path, ext: JobQ
) -> None:
    app = Flask("factory", instance_path=str(tmp_path / "instance"))
    ext.init_app(app)
    state = app.extensions["jobq"]
    try:
        assert isinstance(state, JobQState)
        assert state_for(app) is state
        assert ext.state(app) is state
        assert app.config["JOBQ_DATABASE"] is None
        assert not (tmp_path / "instance").exists()  # the queue opens on first use
        database = tmp_path / "instance" / "jobq.db"
        assert Path(state.queue.storage.path) == database  # type: ignore[attr-defined]
        assert database.exists()
        assert stat.S_IMODE(database.stat().st_mode) == 0o600
        assert stat.S_IMODE(database.parent.stat().st_mode) == 0o700
        assert app.config["JOBQ_CONCURRENCY"] == 4
        assert app.config["JOBQ_QUEUES"] is None
        assert app.config["JOBQ_START_WORKERS"] is True
        assert app.config["JOBQ_LEASE_SECONDS"] == 30
        assert app.config["JOBQ_POLL_INTERVAL"] == 0.01
        assert app.config["JOBQ_RETENTION"] is None
        assert app.config["JOBQ_SYNCHRONOUS"] == "NORMAL"
        assert app.config["JOBQ_DRIVER"] is None
        assert app.config["JOBQ_INLINE"] is False
        assert app.config["JOBQ_HEALTH_AUTH"] is None
        assert jobq.default_queue() is state.queue
        assert state.pool is None  # a test process does not serve: nothing started
    finally:
        state.close(timeout=5.0)
    with pytest.raises(jobq.NotConfigured):
        jobq.default_queue()  # a closed queue is no longer the default


def test_constructor_with_app_and_settings_are_read(tmp_path: Path) -> None:
    app = Flask("direct", instance_path=str(tmp_path / "instance"))
    retention = jobq.Retention(completed=60)
    app.config.update(
        JOBQ_DATABASE="sub/jobs.db",
        JOBQ_LEASE_SECONDS=5,
        JOBQ_POLL_INTERVAL=0.05,
        JOBQ_RETENTION=retention,
    )
    JobQ(app)
    state = state_for(app)
    try:
        assert state.queue.lease_seconds == 5
        assert (tmp_path / "instance" / "sub" / "jobs.db").exists()  # relative to instance
        assert state.queue.poll_interval == 0.05
        assert state.queue.retention is retention
    finally:
        state.close(timeout=5.0)


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("JOBQ_CONCURRENCY", 0, ValueError),
        ("JOBQ_QUEUES", "default", TypeError),
        ("JOBQ_SYNCHRONOUS", "OFF", ValueError),
        ("JOBQ_DRIVER", "postgres", ValueError),
        ("JOBQ_RETENTION", 3600, TypeError),
    ],
)
def test_bad_settings_name_the_key(
    tmp_path: Path, ext: JobQ, key: str, value: object, error: type[Exception]
) -> None:
    app = Flask("bad", instance_path=str(tmp_path / "instance"))
    app.config[key] = value
    with pytest.raises(error, match=key):
        ext.init_app(app)
    assert "jobq" not in app.extensions


def test_second_init_app_is_a_runtime_error(make_app: AppFactory, ext: JobQ) -> None:
    app = make_app()
    with pytest.raises(RuntimeError, match="already initialised on app 'app'"):
        ext.init_app(app)
    with pytest.raises(RuntimeError, match="already initialised"):
        JobQ().init_app(app)


def test_task_enqueued_in_a_request_runs_in_the_app_context(
    make_app: AppFactory, ext: JobQ
) -> None:
    @ext.task("read_config")
    def read_config(key: str) -> str:
        return str(current_app.config[key]) + f" in {current_app.name}"

    app = make_app(GREETING="hello", TESTING=False)  # not testing: workers start by themselves

    @app.post("/go")
    def go() -> dict[str, int]:
        return {"id": read_config.enqueue("GREETING").id}

    with app.app_context():
        assert read_config("GREETING") == "hello in app"  # calling it runs it here
    with app.test_client() as client:
        job_id = client.post("/go").get_json()["id"]
    job = _wait_done(state_for(app).queue, job_id)
    assert job.status is jobq.JobStatus.COMPLETED, job.error
    assert job.decoded_result() == "hello in app"
    assert state_for(app).pool is not None


def test_two_apps_have_their_own_queue_and_run_their_own_jobs(
    make_app: AppFactory, ext: JobQ
) -> None:
    @ext.task("whoami")
    def whoami() -> str:
        return str(current_app.config["WHO"])

    first = make_app("first", WHO="first", TESTING=False)
    second = make_app("second", WHO="second", TESTING=False)
    for app in (first, second):

        @app.post("/go")
        def go() -> dict[str, int]:
            return {"id": whoami.options(priority=1).enqueue().id}

    ids = {}
    for app in (first, second):
        with app.test_client() as client:
            ids[app.name] = client.post("/go").get_json()["id"]
    queues = {app.name: state_for(app).queue for app in (first, second)}
    assert queues["first"] is not queues["second"]
    assert queues["first"].storage.path != queues["second"].storage.path  # type: ignore[attr-defined]
    for name in ("first", "second"):
        job = _wait_done(queues[name], ids[name])
        assert job.decoded_result() == name
        assert job.priority == 1
        assert [j.id for j in queues[name].list()] == [ids[name]]  # nothing in the other file


def test_task_declared_after_init_app_is_registered_on_every_app(
    make_app: AppFactory, ext: JobQ
) -> None:
    first, second = make_app("first"), make_app("second")

    @ext.task()
    def late(x: int) -> int:
        return x * 2

    assert isinstance(late, FlaskTask)
    for app in (first, second):
        assert late.name in state_for(app).queue.tasks
        with app.app_context():
            job = late.enqueue(21)
        ext.start_workers(app)  # no request here to start them
        assert _wait_done(state_for(app).queue, job.id).decoded_result() == 42
    with first.app_context():
        assert ext.queue is state_for(first).queue


def test_a_task_s_retry_rules_apply_in_every_app(make_app: AppFactory, ext: JobQ) -> None:
    with pytest.raises(TypeError, match="discard_on must name exception classes"):
        ext.task("bad", discard_on=["ValueError"])  # type: ignore[list-item]

    @ext.task("parse", max_attempts=4, discard_on=ValueError)
    def parse(text: str) -> int:
        return int(text)

    app = make_app("rules")
    queue = state_for(app).queue
    assert queue.tasks["parse"].retry_rules == parse.retry_rules
    with app.app_context():
        job = parse.enqueue("seven")
    ext.start_workers(app)
    done = _wait_done(queue, job.id)
    assert (done.status, done.attempts) == (jobq.JobStatus.FAILED, 1)
    assert done.error is not None
    assert done.error.message.endswith("; not retried: ValueError is in discard_on")


def test_enqueue_needs_an_initialised_app_context(tmp_path: Path, ext: JobQ) -> None:
    @ext.task("orphan")
    def orphan() -> None:
        pass

    with pytest.raises(RuntimeError, match="application context"):
        orphan.enqueue()
    bare = Flask("bare", instance_path=str(tmp_path))
    with bare.app_context(), pytest.raises(RuntimeError, match="forget to call"):
        orphan.enqueue()
    other = Flask("other", instance_path=str(tmp_path / "other"))
    JobQ(other)  # another extension object: it does not know the task
    try:
        with other.app_context(), pytest.raises(jobq.UnknownTask):
            orphan.enqueue()
    finally:
        state_for(other).close(timeout=5.0)


def test_same_name_for_another_function_is_refused(ext: JobQ) -> None:
    @ext.task("dup")
    def one() -> None:
        pass

    with pytest.raises(jobq.ConfigurationError, match="dup"):

        @ext.task("dup")
        def two() -> None:
            pass


def test_jobq_submit_in_a_request_uses_the_app_queue(make_app: AppFactory, ext: JobQ) -> None:
    @ext.task("add")
    def add(a: int, b: int) -> int:
        return a + b

    app = make_app(TESTING=False)

    @app.post("/submit")
    def submit() -> dict[str, int]:
        by_task = jobq.submit(add, 1, 2)
        by_name = jobq.submit("add", 3, b=4)
        return {"a": by_task.id, "b": by_name.id}

    with app.test_client() as client:
        ids = client.post("/submit").get_json()
    queue = state_for(app).queue
    assert _wait_done(queue, ids["a"]).decoded_result() == 3
    assert _wait_done(queue, ids["b"]).decoded_result() == 7


def test_jobq_submit_in_a_flask_command_opens_the_app_queue(
    make_app: AppFactory, ext: JobQ
) -> None:
    @ext.task("add")
    def add(a: int, b: int) -> int:
        return a + b

    app = make_app()

    @app.cli.command("enqueue-sum")
    def enqueue_sum() -> None:
        print(jobq.submit("add", 1, 2).id)

    result = app.test_cli_runner().invoke(args=["enqueue-sum"])
    assert result.exit_code == 0, result.output
    job = state_for(app).queue.get(int(result.output))
    assert job is not None
    assert job.name == "add"


def test_closing_an_app_whose_queue_never_opened_forgets_it_as_the_default(
    make_app: AppFactory,
) -> None:
    app = make_app()
    state_for(app).close()
    with pytest.raises(jobq.NotConfigured):
        jobq.default_queue()


def test_start_workers_false_starts_no_threads(make_app: AppFactory, ext: JobQ) -> None:
    @ext.task("noop")
    def noop() -> str:
        return current_app.name

    app = make_app(JOBQ_START_WORKERS=False)

    @app.post("/go")
    def go() -> dict[str, int]:
        return {"id": noop.enqueue().id}

    before = _jobq_threads()
    with app.test_client() as client:
        job_id = client.post("/go").get_json()["id"]
        client.post("/go")
    assert _jobq_threads() == before
    queue = state_for(app).queue
    assert queue.get(job_id).status is jobq.JobStatus.PENDING
    assert state_for(app).pool is None
    # A separate worker (here this thread) still runs the job in the app's context.
    assert queue.run_until_empty() == 2
    assert queue.get(job_id).decoded_result() == "app"


def test_explicit_start_and_stop_and_restart_on_the_next_request(
    make_app: AppFactory, ext: JobQ
) -> None:
    app = make_app(TESTING=False)
    pool = ext.start_workers(app)
    assert pool.is_alive
    assert ext.start_workers(app) is pool  # already running: the same pool
    assert ext.stop_workers(app, timeout=5.0)
    assert not pool.is_alive
    assert state_for(app).pool is None
    with app.test_client() as client:
        client.get("/missing")
    restarted = state_for(app).pool
    assert restarted is not None
    assert restarted is not pool
    assert restarted.is_alive


def test_reloader_parent_starts_nothing(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WERKZEUG_RUN_MAIN", raising=False)
    before = _jobq_threads()
    app = make_app()
    assert state_for(app).pool is None
    assert _jobq_threads() == before
    assert os.environ.get("WERKZEUG_RUN_MAIN") is None


def test_closed_state_refuses_to_start(make_app: AppFactory) -> None:
    app = make_app()
    state = state_for(app)
    state.close(timeout=5.0)
    state.close(timeout=5.0)  # twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        state.start_workers()
    with app.test_client() as client:
        assert client.get("/missing").status_code == 404  # no start, no error


@pytest.mark.postgres
def test_a_postgresql_url_in_jobq_database_runs_jobs_there(make_app: AppFactory, ext: JobQ) -> None:
    from jobq.storage.postgres import PostgresStorage

    @ext.task("where")
    def where() -> str:
        return current_app.name

    url = postgres_schema_url()
    try:
        app = make_app("pg", JOBQ_DATABASE=url, TESTING=False)
        assert isinstance(state_for(app).queue.storage, PostgresStorage)

        @app.post("/go")
        def go() -> dict[str, int]:
            return {"id": where.enqueue().id}

        with app.test_client() as client:
            job_id = client.post("/go").get_json()["id"]
        job = _wait_done(state_for(app).queue, job_id)
        assert job.status is jobq.JobStatus.COMPLETED, job.error
        assert job.decoded_result() == "pg"
        state_for(app).close(timeout=5.0)
    finally:
        drop_postgres_schema(url)
