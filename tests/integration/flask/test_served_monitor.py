"""The monitor served by a real Werkzeug server on 127.0.0.1, asked over real sockets.

The test client builds the WSGI environ itself; these tests see what a real
server hands the app: the ``Host`` header a client chose, forwarding headers,
and request lines whose bytes are not UTF-8 (which the server decodes before
jobq sees them).
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

import jobq
from flask_jobq import is_local_request, state_for
from tests.helpers import ROOT

NEWSLETTER = ROOT / "examples" / "newsletter"
TIMEOUT = 10.0  # seconds a request to the local server may take on a busy machine


@contextlib.contextmanager
def served(app: Flask) -> Iterator[int]:
    """Serve ``app`` with Werkzeug's server on 127.0.0.1 in a thread; yields the port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


def send(
    port: int, request_line: bytes, headers: dict[str, str] | None = None, body: bytes = b""
) -> tuple[int, bytes]:
    """Send one HTTP/1.1 request, bytes as given, and return the status and body."""
    lines = [request_line]
    chosen = {"Host": f"127.0.0.1:{port}", "Connection": "close", **(headers or {})}
    if body:
        chosen.setdefault("Content-Type", "application/json")
        chosen["Content-Length"] = str(len(body))
    lines += [f"{name}: {value}".encode("latin-1") for name, value in chosen.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as connection:
        connection.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, content = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), content


def get(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    return send(port, f"GET {path} HTTP/1.1".encode(), headers)[0]


def post(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    return send(port, f"POST {path} HTTP/1.1".encode(), headers, body=b"{}")[0]


# -- who may use the monitor: this machine, naming itself, through no proxy ---------------

FOREIGN = [
    {"Host": "evil.example"},  # DNS rebinding: 127.0.0.1 under the attacker's name
    {"Host": "evil.example:{port}"},
    {"Host": "127.0.0.1.evil.example"},
    {"Host": "localhost.evil.example:{port}"},
    {"X-Forwarded-For": "203.0.113.9"},  # a reverse proxy on this machine
    {"Forwarded": "for=203.0.113.9"},
    {"X-Real-IP": "203.0.113.9"},
    {"X-Forwarded-Host": "jobs.example.com"},
]
LOCAL = [
    {"Host": "127.0.0.1:{port}"},
    {"Host": "localhost:{port}"},
    {"Host": "LOCALHOST"},
    {"Host": "127.0.0.2:{port}"},
]


def _headers(template: dict[str, str], port: int) -> dict[str, str]:
    return {name: value.format(port=port) for name, value in template.items()}


def _assert_only_local_requests_pass(
    port: int, queue: jobq.DurableQueue, prefix: str, queue_name: str
) -> None:
    for template in FOREIGN:
        headers = _headers(template, port)
        assert get(port, f"{prefix}/stats", headers) == 403, headers
        assert post(port, f"{prefix}/queues/{queue_name}/pause", headers) == 403, headers
        assert queue.stats().paused == frozenset(), headers
    for template in LOCAL:
        assert get(port, f"{prefix}/stats", _headers(template, port)) == 200, template
    assert post(port, f"{prefix}/queues/{queue_name}/pause") == 200
    assert queue.stats().paused == {queue_name}


def test_debug_mode_opens_the_monitor_to_local_requests_only(
    monitor_app: Callable[..., Flask],
) -> None:
    app = monitor_app()  # no JOBQ_MONITOR_AUTH
    app.testing, app.debug = False, True
    queue = state_for(app).queue
    with served(app) as port:
        _assert_only_local_requests_pass(port, queue, "/jobq", "default")
        status, body = send(port, b"GET /jobq/stats HTTP/1.1", {"Host": "evil.example"})
    assert status == 403
    assert b"Host header of localhost" in body


def test_is_local_request_as_the_callback_outside_debug(monitor_app: Callable[..., Flask]) -> None:
    app = monitor_app(JOBQ_MONITOR_AUTH=is_local_request)
    app.testing = False
    with served(app) as port:
        _assert_only_local_requests_pass(port, state_for(app).queue, "/jobq", "default")


@pytest.mark.parametrize(
    ("remote", "host", "local"),
    [
        ("127.0.0.1", "localhost", True),
        ("127.8.9.10", "127.0.0.1:5000", True),
        ("::1", "[::1]:5000", True),
        ("::1", "[::1]", True),
        ("::ffff:127.0.0.1", "localhost:80", True),
        ("::1", "::1", False),  # an IPv6 host must be bracketed
        ("192.0.2.1", "localhost", False),
        ("::2", "localhost", False),
        ("127.0.0.1", "", False),
        ("127.0.0.1", "localhost:", False),
        ("127.0.0.1", "localhost:abc", False),
        ("127.0.0.1", "127.0.0.1@evil.example", False),
        ("127.0.0.1", "[::ffff:7f00:1]", True),
        ("127.0.0.1", "0.0.0.0", False),
        ("127.0.0.1", "10.0.0.1", False),
        ("not-an-address", "localhost", False),
    ],
)
def test_is_local_request_rules(remote: str, host: str, local: bool) -> None:
    app = Flask(__name__)
    with app.test_request_context(environ_base={"REMOTE_ADDR": remote}, headers={"Host": host}):
        assert is_local_request() is local


# -- the newsletter demo, served for real --------------------------------------------------


@pytest.fixture
def newsletter(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """examples/newsletter/app.py as a module (its folder on sys.path, as when run)."""
    name = "newsletter_example_app"
    monkeypatch.syspath_prepend(str(NEWSLETTER))
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, NEWSLETTER / "app.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("debug", [False, True])
def test_the_newsletter_monitor_answers_local_requests_only(
    newsletter: ModuleType, tmp_path: Path, debug: bool
) -> None:
    config: dict[str, Any] = {
        "JOBQ_DATABASE": str(tmp_path / "jobs.db"),
        "JOBQ_START_WORKERS": False,
        "DEBUG": debug,
    }
    app: Flask = newsletter.create_app(config)
    try:
        with served(app) as port:
            _assert_only_local_requests_pass(port, state_for(app).queue, "/jobq", "newsletter")
    finally:
        newsletter.close_app(app)


# -- queue names whose bytes are not UTF-8 -------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"%FF",
        b"a%C3",
        b"%ED%A0%80",
        b"%C0%AF",  # percent-encoded bytes that are not UTF-8
        b"\xff",
        b"a\xc3",
        b"\xc3\xa9",  # raw bytes, which HTTP does not allow in a request line
    ],
)
@pytest.mark.parametrize("action", ["pause", "resume"])
def test_queue_names_that_are_not_what_the_client_sent_are_refused(
    monitor_app: Callable[..., Flask], raw: bytes, action: str
) -> None:
    app = monitor_app(JOBQ_MONITOR_AUTH=lambda: True)
    app.testing = False
    queue = state_for(app).queue
    queue.pause("other")  # a resume must leave it paused; a pause must add nothing
    with served(app) as port:
        status, body = send(
            port, b"POST /jobq/queues/" + raw + b"/" + action.encode() + b" HTTP/1.1", body=b"{}"
        )
        assert status == 400, body
        assert b"percent-encode" in body
        assert queue.stats().paused == {"other"}
        # Names percent-encoded as UTF-8 are taken as sent, U+FFFD itself included.
        for encoded in (b"%C3%A9", b"%EF%BF%BD"):
            status, body = send(
                port, b"POST /jobq/queues/" + encoded + b"/pause HTTP/1.1", body=b"{}"
            )
            assert status == 200, body
    assert queue.stats().paused == {"other", "é", "\ufffd"}
