"""Plain helpers the tests share: bounded waits, the backends a queue test runs on,
throwaway PostgreSQL schemas, a child process runner and the monitor's test client.

Fixtures live in the ``conftest.py`` files; everything a test module imports from
outside its own file comes from here (or from a ``_``-prefixed helper module of
its package), never from another test module or a ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from jobq import DurableQueue, Job, JobStatus
from jobq.storage.base import Storage

if TYPE_CHECKING:
    from flask import Flask
    from werkzeug.test import TestResponse

try:
    import jsonschema
except ImportError:  # the monitor tests then only lose the schema check
    jsonschema = None

ROOT = Path(__file__).resolve().parent.parent
"""The repository's folder (where ``jobq``, ``examples`` and ``benchmarks`` are)."""

# -- bounded waits ------------------------------------------------------------------------

BOUNDED_WAIT = 10.0
"""Real seconds a test may wait for something that happens in another thread."""


def wait_for(
    predicate: Callable[[], bool], what: str, timeout: float = 30.0, *, interval: float = 0.002
) -> float:
    """Poll (bounded, in real time) until another thread or process makes ``predicate``
    true; return the wall time (``time.time()``) it was seen true. ``interval``: the
    seconds between two calls, longer for a predicate that costs something."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(interval)
    return time.time()


def eventually(predicate: Callable[[], bool], timeout: float = BOUNDED_WAIT) -> None:
    """Wait (bounded, in real time) for another thread to make ``predicate`` true."""
    wait_for(predicate, "condition not reached", timeout)


# -- backends -----------------------------------------------------------------------------

QUEUE_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
"""The backends a queue-level test runs on, as pytest parameters."""

MakeQueue = Callable[..., DurableQueue]
"""The type of the ``make_queue`` fixture."""

both_backends = pytest.mark.parametrize("database", QUEUE_BACKENDS, indirect=True)
"""Runs a test taking the ``database`` fixture on SQLite and on PostgreSQL."""

POSTGRES_URL = os.environ.get("JOBQ_TEST_POSTGRES_URL", "")
NO_POSTGRES = (
    "no PostgreSQL server for the tests: set JOBQ_TEST_POSTGRES_URL "
    "or install PostgreSQL's server (Debian: apt install postgresql) and run "
    "`python3 dev.py test`, which starts a throwaway one"
)


def require_postgres() -> str:
    """The test server's URL; skips (or fails, under JOBQ_REQUIRE_POSTGRES=1) without one."""
    if POSTGRES_URL:
        return POSTGRES_URL
    if os.environ.get("JOBQ_REQUIRE_POSTGRES") == "1":
        pytest.fail(NO_POSTGRES)
    pytest.skip(NO_POSTGRES)


def postgres_schema_url() -> str:
    """A ``postgresql://`` URL whose ``search_path`` is a new, empty schema."""
    import psycopg  # only where PostgreSQL is used: the 'postgres' extra

    base = require_postgres()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-c%20search_path%3D{schema}"


def drop_postgres_schema(url: str) -> None:
    """Drop the schema that :func:`postgres_schema_url` made."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    schema = str(conninfo_to_dict(url)["options"]).rsplit("=", 1)[1]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


REDIS_URL = os.environ.get("JOBQ_TEST_REDIS_URL", "")
NO_REDIS = (
    "no Redis server for the tests: set JOBQ_TEST_REDIS_URL "
    "or install redis-server (Debian: apt install redis-server) and run "
    "`python3 dev.py test`, which starts a throwaway one"
)


def require_redis() -> str:
    """The test Redis server's URL; skips (or fails, under JOBQ_REQUIRE_REDIS=1) without one."""
    if REDIS_URL:
        return REDIS_URL
    if os.environ.get("JOBQ_REQUIRE_REDIS") == "1":
        pytest.fail(NO_REDIS)
    pytest.skip(NO_REDIS)


def redis_test_prefix() -> str:
    """A key prefix no other test uses, on the test Redis server."""
    require_redis()
    return f"jobq-test-{uuid.uuid4().hex[:12]}:"


def drop_redis_prefix(prefix: str) -> None:
    """Delete every key under ``prefix`` (made by :func:`redis_test_prefix`)."""
    import redis  # only where Redis is used: the 'redis' extra

    with redis.Redis.from_url(REDIS_URL) as client:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start : start + 1000])


three_backends = pytest.mark.parametrize(
    "database", [*QUEUE_BACKENDS, pytest.param("redis", marks=pytest.mark.redis)], indirect=True
)
"""Runs a test taking the ``database`` fixture on SQLite, PostgreSQL and Redis (then
``database`` is a :func:`redis_location`: open it with :func:`open_location`)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a server a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_location(prefix: str) -> str:
    """The test Redis server's URL with jobq's options in its query, as users write
    them: ``prefix`` and ``durability=ignore`` (the test server keeps nothing on
    disk); one string that names a database for the ``database`` fixture and the
    child processes' JSON."""
    base = require_redis()
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}prefix={quote(prefix, safe='')}&durability=ignore"


def open_location(database: str) -> str | Storage:
    """What ``DurableQueue`` opens for the ``database`` fixture's value: the path or URL
    itself (a :func:`redis_location` goes through ``open_storage``, as users' URLs do)."""
    return database


# -- child processes ----------------------------------------------------------------------

RELIABILITY_CHILD = ROOT / "tests" / "integration" / "_reliability_child.py"


@contextlib.contextmanager
def started_process(
    args: list[str], *, log: Path, cwd: Path = ROOT, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``args`` in a session of its own, output (both streams) in ``log``; on
    leaving, kill its whole session if it still runs, and reap it."""
    with open(log, "wb") as output:
        child = subprocess.Popen(
            args,
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield child
    finally:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
        child.wait(30.0)


def gunicorn_port(process: subprocess.Popen[bytes], log: Path, timeout: float) -> int:
    """The port gunicorn (started with ``--bind 127.0.0.1:0``, output in ``log``) says
    it listens on, once it does."""
    found: list[int] = []

    def listening() -> bool:
        assert process.poll() is None, f"gunicorn exited early:\n{log.read_text()}"
        match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", log.read_text())
        if match:
            found.append(int(match.group(1)))
        return bool(found)

    wait_for(listening, "gunicorn listening", timeout)
    return found[0]


@contextlib.contextmanager
def signal_once_completed(
    queue: DurableQueue, ids: list[int], signum: int, timeout: float = 30.0
) -> Iterator[None]:
    """While the block runs a worker in this process, send ``signum`` to this process
    once the jobs ``ids`` have all completed (or ``timeout`` passed, so the worker
    returns anyway); on leaving, wait for that to be done."""

    def send_when_done() -> None:
        try:
            wait_for(
                lambda: all(queue.get(i).status is JobStatus.COMPLETED for i in ids),
                "the jobs completed",
                timeout,
                interval=0.01,
            )
        finally:
            os.kill(os.getpid(), signum)

    sender = threading.Thread(target=send_when_done)
    sender.start()
    try:
        yield
    finally:
        sender.join(timeout + 5)


def run_child(mode: str, out: Path, **config: Any) -> dict[str, Any]:
    """Run tests/integration/_reliability_child.py in its own session (bounded);
    return its answer."""
    config = {"mode": mode, "out": str(out), **config}
    proc = subprocess.run(
        [sys.executable, str(RELIABILITY_CHILD), json.dumps(config)],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        start_new_session=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return json.loads(out.read_text())  # type: ignore[no-any-return]


STORAGE_CHILD = ROOT / "tests" / "contract" / "_child.py"


def run_children(argvs: list[list[str]], timeout: float = 30.0) -> list[dict[str, Any]]:
    """Start one tests/contract/_child.py per argv, release them together, return their
    JSON outputs."""
    children = [
        subprocess.Popen(
            [sys.executable, str(STORAGE_CHILD), *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    try:
        for child in children:  # every interpreter is up and waiting
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = []
        for child in children:
            out, err = child.communicate(timeout=timeout)
            assert child.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
            for stream in (child.stdin, child.stdout, child.stderr):
                if stream is not None:
                    stream.close()


# -- the Flask extension and its monitor --------------------------------------------------

AppFactory = Callable[..., "Flask"]
"""The type of the ``make_app`` fixture."""

NIGHTLY = "nightly report/eu"  # a space and a slash: sent as nightly%20report%2Feu
"""The name of the cron schedule the ``scheduled`` fixture stores."""


def enqueue(target: DurableQueue, name: str, *args: Any, **options: Any) -> Job:
    """Enqueue the task registered as ``name``, with ``options`` if any."""
    task = target.get_task(name)
    return task.options(**options).enqueue(*args) if options else task.enqueue(*args)


def _openapi_operation(spec: dict[str, Any], path: str, method: str) -> dict[str, Any] | None:
    relative = path.split("?")[0].removeprefix("/jobq") or "/"  # /jobq is the index too
    for template, operations in spec["paths"].items():
        parts = re.split(r"(\{[^}]+\})", template)
        pattern = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
        if re.fullmatch(pattern, relative):
            return operations.get(method.lower())  # type: ignore[no-any-return]
    return None


@functools.cache
def _monitor_spec() -> dict[str, Any]:
    # Imported here so that the tests of jobq's core need no Flask.
    from flask_jobq.openapi import openapi_spec

    return openapi_spec("/jobq")


def validate_against_spec(method: str, path: str, response: TestResponse) -> None:
    """Fail unless the response's status is documented and its body fits the schema."""
    assert jsonschema is not None
    spec = _monitor_spec()
    operation = _openapi_operation(spec, path, method)
    if operation is None or str(response.status_code) not in operation["responses"]:
        # Routing errors and refusals are documented once for every path (see info).
        assert response.status_code in (403, 404, 405), (method, path, response.status_code)
        schema: dict[str, Any] = {"$ref": "#/components/schemas/Error"}
    else:
        documented = operation["responses"][str(response.status_code)]
        schema = documented["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator({**schema, "components": spec["components"]})
    validator.validate(response.get_json())


class Monitor:
    """A test client for the monitor: paths are relative to the prefix. Every
    response must be JSON and, when ``jsonschema`` is installed, valid against the
    OpenAPI description."""

    def __init__(self, app: Flask, prefix: str = "/jobq") -> None:
        self.app = app
        self.client = app.test_client()
        self.prefix = prefix
        self.responses = 0

    def request(self, method: str, path: str, **kwargs: Any) -> TestResponse:
        url = self.prefix + path
        response = self.client.open(url, method=method, **kwargs)
        assert response.is_json, (method, url, response.status_code, response.data[:200])
        body = response.get_json()
        if response.status_code >= 400 and not isinstance(body.get("status"), str):
            assert body["status"] == response.status_code
            assert body["message"]
        if jsonschema is not None and self.prefix == "/jobq":
            validate_against_spec(method, url, response)
        self.responses += 1
        return response

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        """A POST with a JSON body ``{}`` unless ``json``, ``data`` or headers say otherwise."""
        if "json" not in kwargs and "data" not in kwargs and "headers" not in kwargs:
            kwargs["json"] = {}
        return self.request("POST", path, **kwargs)
