"""A real process for tests/integration/flask/test_processes.py:
``python _app_process.py MODE DIR``.

- ``fork``: create an app, serve one request (its pool starts and runs a job),
  then ``os.fork()``. The parent stops its pool and tells the child through a
  pipe; the child checks the inherited pool is forgotten, serves a request that
  enqueues a job, and waits for its own new pool to run it. Writes
  ``fork-result.json``.
- ``prefork``: what gunicorn ``--workers 2 --preload`` does: create the app, bind
  127.0.0.1:0, fork two children that serve HTTP on that socket (Werkzeug's
  server), write ``port``; on the file ``stop``, SIGTERM the children and exit
  with 0 only if both died of it. Each ``record`` job appends its pid to
  ``ledger.txt``.
- ``sigterm``: serve a request that enqueues a job sleeping ``SLOW`` seconds,
  touch ``started`` once it runs, then wait for SIGTERM (the test sends it).

Every wait has a deadline; any failure exits non-zero with a traceback on stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from flask import Flask

import jobq
from flask_jobq import JobQ, signals, state_for

HARD_LIMIT = 60.0
SLOW = 0.5

jobq_ext = JobQ()


@jobq_ext.task("whoami")
def whoami() -> int:
    return os.getpid()


@jobq_ext.task("record")
def record(ledger: str) -> int:
    with open(ledger, "a") as file:
        file.write(f"{os.getpid()}\n")
    return os.getpid()


@jobq_ext.task("slow")
def slow(marker: str) -> str:
    Path(marker).touch()
    time.sleep(SLOW)
    return "finished"


def create_app(folder: Path) -> Flask:
    app = Flask(__name__, instance_path=str(folder))
    app.config.update(JOBQ_CONCURRENCY=2)
    jobq_ext.init_app(app)

    @app.post("/whoami")
    def enqueue_whoami() -> dict[str, int]:
        return {"id": whoami.enqueue().id}

    @app.post("/record")
    def enqueue_record() -> dict[str, int]:
        return {"id": record.enqueue(str(folder / "ledger.txt")).id, "pid": os.getpid()}

    @app.post("/slow")
    def enqueue_slow() -> dict[str, int]:
        return {"id": slow.enqueue(str(folder / "started")).id}

    return app


def reloader_app() -> Flask:
    """For ``flask --app tests.integration.flask._app_process:reloader_app() run --debug``: the
    folder comes from ``JOBQ_TEST_DIR``; each worker start appends its pid to
    ``worker-started.txt``."""
    folder = Path(os.environ["JOBQ_TEST_DIR"])
    app = create_app(folder)

    @signals.worker_started.connect_via(app, weak=False)
    def started(sender: Flask, **kwargs: object) -> None:
        with open(folder / "worker-started.txt", "a") as file:
            file.write(f"{os.getpid()}\n")

    # Connected after init_app: workers start once Flask has loaded the app, so this
    # receiver sees the start.
    return app


def wait_for(predicate: object, what: str) -> None:
    deadline = time.monotonic() + HARD_LIMIT
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {HARD_LIMIT} s")
        time.sleep(0.005)


def run_and_wait(app: Flask) -> jobq.Job:
    with app.test_client() as client:
        job_id = client.post("/whoami").get_json()["id"]
    queue = state_for(app).queue
    wait_for(lambda: queue.get(job_id).status is jobq.JobStatus.COMPLETED, f"job {job_id}")
    return queue.get(job_id)


def fork_mode(folder: Path) -> None:
    app = create_app(folder)
    before = run_and_wait(app)
    parent_pool = state_for(app).pool
    assert parent_pool is not None
    assert parent_pool.is_alive
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(write_end)
            os.read(read_end, 1)  # the parent's pool has stopped: only we can run jobs now
            inherited = state_for(app).pool
            job = run_and_wait(app)
            pool = state_for(app).pool
            result = {
                "parent_job_pid": before.decoded_result(),
                "child_job_pid": job.decoded_result(),
                "child_pid": os.getpid(),
                "inherited_pool_seen": inherited is not None,
                "child_pool_alive": pool is not None and pool.is_alive,
                "child_pool_is_parents": pool is parent_pool,
            }
            state_for(app).close(timeout=5.0)
            (folder / "fork-result.json").write_text(json.dumps(result))
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(read_end)
    state_for(app).stop_workers(timeout=5.0)
    os.write(write_end, b"x")
    _, status = os.waitpid(pid, 0)
    state_for(app).close(timeout=5.0)
    sys.exit(os.waitstatus_to_exitcode(status))


def prefork_mode(folder: Path) -> None:
    import signal
    import socket

    from werkzeug.serving import make_server

    app = create_app(folder)  # "preloaded": created before the fork, no pool started
    listener = socket.create_server(("127.0.0.1", 0))
    children = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            try:
                server = make_server("127.0.0.1", 0, app, threaded=True, fd=listener.fileno())
                server.serve_forever()
            finally:
                os._exit(1)  # only SIGTERM should end a child
        children.append(pid)
    (folder / "port.tmp").write_text(str(listener.getsockname()[1]))
    (folder / "port.tmp").rename(folder / "port")
    wait_for(lambda: (folder / "stop").exists(), "the stop file")
    codes = []
    for pid in children:
        os.kill(pid, signal.SIGTERM)
        codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    state_for(app).close(timeout=5.0)
    print(json.dumps({"children": children, "codes": codes}))
    sys.exit(0 if codes == [-signal.SIGTERM] * 2 else 1)


def sigterm_mode(folder: Path) -> None:
    app = create_app(folder)
    with app.test_client() as client:
        job_id = client.post("/slow").get_json()["id"]
    (folder / f"job-{job_id}").touch()
    time.sleep(HARD_LIMIT)
    sys.exit(3)  # SIGTERM never came


if __name__ == "__main__":
    mode, directory = sys.argv[1], Path(sys.argv[2])
    {"fork": fork_mode, "prefork": prefork_mode, "sigterm": sigterm_mode}[mode](directory)
