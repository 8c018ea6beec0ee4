"""jobq.handlers.webhook against a real HTTP server on 127.0.0.1 and a real DurableQueue:
no mocks. Time between attempts passes on the FakeClock; the only real wait is the
slow server's (0.2 s read timeout)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import math
import re
import socket
import ssl
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jobq
from jobq import ConfigurationError, DurableQueue, Job, JobStatus
from jobq.handlers import webhook
from jobq.handlers.webhook import WebhookSettings, WebhookVerificationError, sign, verify
from jobq.handlers.webhook.netguard import (
    AddressInfo,
    DestinationRefused,
    NetGuard,
    forbidden_reason,
)
from jobq.testing import FakeClock
from tests.integration.handlers._smtp import make_certificate, server_tls_context

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
START = 1_700_000_000.0  # epoch seconds the fake clock starts at

# -- observing connections: every socket.connect() in this process, while recording ----

_connects: list[Any] = []
_recording = threading.Event()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _recording.is_set():
        _connects.append(args[1])


sys.addaudithook(_audit)  # cannot be removed; it only records while _recording is set


@pytest.fixture
def connects() -> Iterator[list[Any]]:
    """Addresses this process connected to during the test (any thread)."""
    _connects.clear()
    _recording.set()
    yield _connects
    _recording.clear()


# -- a scripted receiver ----------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A threaded HTTP/1.1 server on 127.0.0.1. ``script[path]`` lists the replies
    given in turn (the last one repeats); unknown paths answer 200."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.server_names: list[str | None] = []  # TLS SNI sent by clients
        self.script: dict[str, list[Reply]] = {}
        self.requests: list[Received] = []
        self.connections: list[tuple[str, int]] = []
        self.released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                receiver.handle(self)

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request: Any, client_address: Any) -> None:
                receiver.connections.append(client_address)
                super().process_request(request, client_address)

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out and left: expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="webhook-test-server",
        )
        self.thread.start()

    def url(self, path: str = "/ok", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", 0))
        body = handler.rfile.read(length)
        self.requests.append(
            Received(handler.command, handler.path, dict(handler.headers.items()), body)
        )
        replies = self.script.get(handler.path, [Reply()])
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if reply.delay:
            self.released.wait(reply.delay)
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        handler.wfile.write(reply.body)

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def queue(tmp_path: Path, clock: FakeClock) -> Iterator[DurableQueue]:
    clock.advance(START)
    queue = DurableQueue(tmp_path / "jobs.db", clock=clock)
    yield queue
    webhook.uninstall(queue)  # closes the handler's sessions and their sockets
    queue.close()


def install(queue: DurableQueue, *, resolver: Any = None, **changes: Any) -> Any:
    """The handler with a secret, 127.0.0.1 allow-listed (the receiver) and short timeouts."""
    values: dict[str, Any] = {
        "secret": SECRET,
        "allow_hosts": ("127.0.0.1",),
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
    }
    values.update(changes)
    return webhook.install(queue, WebhookSettings(**values), resolver=resolver)


def settle(queue: DurableQueue, job: Job) -> Job:
    queue.run_until_empty()
    return queue.get(job.id)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- delivering -------------------------------------------------------------------------


def test_signed_delivery_verifies_on_the_receiver(
    queue: DurableQueue, receiver: Receiver, clock: FakeClock
) -> None:
    deliver = install(queue)
    payload = {"order": 42, "state": "paid", "note": "café"}
    job = deliver.enqueue(receiver.url("/ok"), payload)

    done = settle(queue, job)

    assert done.status is JobStatus.COMPLETED
    result = done.decoded_result()
    assert result["status"] == 200
    assert result["body"] == "ok"
    assert result["attempt"] == 1
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("jobq-webhook/")
    assert request.body == json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    assert request.headers["webhook-timestamp"] == str(int(START))
    assert request.headers["webhook-id"] == result["message_id"]
    assert request.headers["webhook-id"].startswith(f"msg_{job.id}_")
    assert verify(SECRET, request.headers, request.body, now=clock.now()) == payload


def test_event_type_envelope_headers_and_message_id(
    queue: DurableQueue, receiver: Receiver, clock: FakeClock
) -> None:
    deliver = install(queue)
    job = deliver.enqueue(
        receiver.url("/ok"),
        [1, 2],
        event_type="order.paid",
        headers={"Authorization": "Bearer t0k"},
        message_id="evt_7",
    )
    assert settle(queue, job).status is JobStatus.COMPLETED
    [request] = receiver.requests
    assert request.headers["webhook-id"] == "evt_7"
    assert request.headers["Authorization"] == "Bearer t0k"
    assert verify(SECRET, request.headers, request.body, now=clock.now()) == {
        "type": "order.paid",
        "timestamp": "2023-11-14T22:13:20Z",
        "data": [1, 2],
    }


def test_unsigned_when_no_secret(queue: DurableQueue, receiver: Receiver) -> None:
    deliver = install(queue, secret=None)
    assert settle(queue, deliver.enqueue(receiver.url(), {})).status is JobStatus.COMPLETED
    assert "webhook-signature" not in receiver.requests[0].headers
    assert "webhook-id" in receiver.requests[0].headers


def test_one_session_serves_consecutive_jobs(queue: DurableQueue, receiver: Receiver) -> None:
    deliver = install(queue)
    jobs = [deliver.enqueue(receiver.url(), {"n": n}) for n in range(3)]
    queue.run_until_empty()
    assert all(queue.get(j.id).status is JobStatus.COMPLETED for j in jobs)
    assert len(receiver.requests) == 3
    assert len(receiver.connections) == 1  # kept alive between jobs


def test_429_waits_for_retry_after_then_completes(
    queue: DurableQueue, receiver: Receiver, clock: FakeClock
) -> None:
    receiver.script["/busy"] = [
        Reply(429, b"slow down", {"Retry-After": "120"}),
        Reply(200, b"thanks"),
    ]
    deliver = install(queue)
    job = deliver.enqueue(receiver.url("/busy"), {"a": 1})

    first = settle(queue, job)
    assert first.status is JobStatus.PENDING
    assert first.attempts == 1
    assert first.run_at == START + 120
    assert first.error is not None
    assert first.error.type == "TransientError"
    assert "429" in first.error.message
    assert "slow down" in first.error.message

    clock.advance(119)
    assert queue.run_until_empty() == 0  # not due yet
    clock.advance(1)
    done = settle(queue, job)
    assert done.status is JobStatus.COMPLETED
    assert done.decoded_result()["attempt"] == 2
    assert done.decoded_result()["body"] == "thanks"

    one, two = receiver.requests
    assert one.headers["webhook-id"] == two.headers["webhook-id"]  # stable across retries
    assert int(two.headers["webhook-timestamp"]) == int(START) + 120  # stamped at send time
    assert verify(SECRET, two.headers, two.body, now=clock.now()) == {"a": 1}


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (formatdate(START + 300, usegmt=True), 300),  # an HTTP date
        ("999999", 600),  # capped by max_retry_after
        (formatdate(START - 50, usegmt=True), 0),  # a date already past
    ],
)
def test_retry_after_dates_and_cap(
    queue: DurableQueue, receiver: Receiver, retry_after: str, expected: float
) -> None:
    receiver.script["/busy"] = [Reply(503, b"maintenance", {"Retry-After": retry_after})]
    deliver = install(queue, max_retry_after=600)
    job = deliver.enqueue(receiver.url("/busy"), {})
    queue.run_until_empty(max_jobs=1)  # with a 0 s wait the job would run again at once
    job = queue.get(job.id)
    assert job.status is JobStatus.PENDING
    assert job.run_at == START + expected
    assert job.error is not None
    assert "503" in job.error.message


def test_500_is_retried_up_to_max_attempts(
    queue: DurableQueue, receiver: Receiver, clock: FakeClock
) -> None:
    receiver.script["/down"] = [Reply(500, b"database on fire")]
    deliver = install(queue, max_attempts=3, retry_delay=10)
    job = deliver.enqueue(receiver.url("/down"), {})
    for attempt in (1, 2):
        now = clock.now()
        current = settle(queue, job)
        assert current.status is JobStatus.PENDING
        assert current.attempts == attempt
        assert now + 5 * 2 ** (attempt - 1) <= current.run_at <= now + 10 * 2 ** (attempt - 1)
        clock.advance(3600)
    final = settle(queue, job)
    assert final.status is JobStatus.FAILED
    assert final.attempts == 3
    assert final.error is not None
    assert "500" in final.error.message
    assert "database on fire" in final.error.message
    assert len(receiver.requests) == 3


def test_a_404_is_retried_when_install_is_given_other_rules(
    queue: DurableQueue, receiver: Receiver, clock: FakeClock
) -> None:
    receiver.script["/soon"] = [Reply(404, b"not deployed yet"), Reply(200, b"ok")]
    settings = WebhookSettings(secret=SECRET, allow_hosts=("127.0.0.1",), read_timeout=5.0)
    deliver = webhook.install(queue, settings, retry_on={jobq.Refused: 2}, discard_on=())
    job = settle(queue, deliver.enqueue(receiver.url("/soon"), {}))
    assert job.status is JobStatus.PENDING
    assert job.error is not None
    assert job.error.type == "Refused"
    assert job.error.message.endswith(
        "retried by the retry_on rule for Refused (at most 2 attempts)"
    )
    clock.advance(3600)
    assert settle(queue, job).status is JobStatus.COMPLETED
    assert len(receiver.requests) == 2


def test_404_fails_at_once(queue: DurableQueue, receiver: Receiver) -> None:
    receiver.script["/gone"] = [Reply(404, b"no such hook")]
    deliver = install(queue)
    job = settle(queue, deliver.enqueue(receiver.url("/gone"), {}))
    assert job.status is JobStatus.FAILED
    assert job.attempts == 1
    assert job.error is not None
    assert job.error.type == "Refused"
    assert "404" in job.error.message
    assert "no such hook" in job.error.message
    assert job.error.message.endswith("; not retried: Refused is in discard_on")


def test_long_answers_are_cut_to_the_excerpt(queue: DurableQueue, receiver: Receiver) -> None:
    receiver.script["/big"] = [Reply(400, b"x" * 100_000)]
    deliver = install(queue, max_response_excerpt=50)
    job = settle(queue, deliver.enqueue(receiver.url("/big"), {}))
    assert job.error is not None
    assert "x" * 50 + "..." in job.error.message
    assert "x" * 51 not in job.error.message


def test_refused_connection_is_retried(queue: DurableQueue) -> None:
    deliver = install(queue)
    job = settle(queue, deliver.enqueue(f"http://127.0.0.1:{closed_port()}/", {}))
    assert job.status is JobStatus.PENDING
    assert job.attempts == 1
    assert job.error is not None
    assert job.error.type == "TransientError"
    assert "cannot reach" in job.error.message


def test_slow_server_times_out_and_is_retried(queue: DurableQueue, receiver: Receiver) -> None:
    receiver.script["/slow"] = [Reply(200, delay=5.0)]  # released when the test ends
    deliver = install(queue, read_timeout=0.2)
    job = settle(queue, deliver.enqueue(receiver.url("/slow"), {}))
    assert job.status is JobStatus.PENDING
    assert job.attempts == 1
    assert job.error is not None
    assert job.error.type == "TransientError"
    assert "timed out" in job.error.message


def test_redirects_are_not_followed_by_default(queue: DurableQueue, receiver: Receiver) -> None:
    receiver.script["/moved"] = [Reply(307, b"", {"Location": receiver.url("/target")})]
    deliver = install(queue)
    job = settle(queue, deliver.enqueue(receiver.url("/moved"), {}))
    assert job.status is JobStatus.FAILED
    assert job.attempts == 1
    assert job.error is not None
    assert "307" in job.error.message
    assert "follow_redirects" in job.error.message
    assert [r.path for r in receiver.requests] == ["/moved"]  # the target never contacted


def resolve_test_names(host: str, port: int) -> list[AddressInfo]:
    """hooks.test is 127.0.0.1; nothing else resolves (no DNS in these tests)."""
    if host == "hooks.test":
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
    raise socket.gaierror(socket.EAI_NONAME, "unknown in this test")


@pytest.mark.parametrize("allowed", [False, True])
def test_followed_redirects_are_guarded(
    queue: DurableQueue, receiver: Receiver, allowed: bool
) -> None:
    receiver.script["/moved"] = [Reply(307, b"", {"Location": receiver.url("/target")})]
    hosts = ("hooks.test", "127.0.0.1") if allowed else ("hooks.test",)
    deliver = install(queue, follow_redirects=True, allow_hosts=hosts, resolver=resolve_test_names)
    job = settle(queue, deliver.enqueue(receiver.url("/moved", host="hooks.test"), {"a": 1}))
    if allowed:
        assert job.status is JobStatus.COMPLETED
        assert [r.path for r in receiver.requests] == ["/moved", "/target"]
        assert json.loads(receiver.requests[1].body) == {"a": 1}
    else:
        assert job.status is JobStatus.FAILED
        assert job.attempts == 1
        assert job.error is not None
        assert "refused" in job.error.message
        assert "127.0.0.1" in job.error.message
        assert [r.path for r in receiver.requests] == ["/moved"]


def test_https_verifies_the_host_name_while_connecting_to_the_checked_address(
    tmp_path: Path, queue: DurableQueue, connects: list[Any]
) -> None:
    cert, key = make_certificate(tmp_path)  # valid for smtp.test and 127.0.0.1

    def resolver(host: str, port: int) -> list[AddressInfo]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    receiver = Receiver(tls=server_tls_context(cert, key))
    try:
        deliver = install(queue, cafile=str(cert), resolver=resolver)
        good = settle(queue, deliver.enqueue(receiver.url(host="smtp.test", scheme="https"), {}))
        assert good.status is JobStatus.COMPLETED
        assert receiver.server_names == ["smtp.test"]  # SNI carries the name, not the IP
        assert connects == [("127.0.0.1", receiver.port)]

        # Same address, another name: the certificate does not match it.
        wrong = settle(queue, deliver.enqueue(receiver.url(host="other.test", scheme="https"), {}))
        assert wrong.status is JobStatus.FAILED
        assert wrong.attempts == 1
        assert wrong.error is not None
        assert "not trusted" in wrong.error.message

        untrusted = install(queue, resolver=resolver)  # requests' own CA bundle
        job = settle(queue, untrusted.enqueue(receiver.url(host="smtp.test", scheme="https"), {}))
        assert job.status is JobStatus.FAILED
        assert job.error is not None
        assert "not trusted" in job.error.message
    finally:
        webhook.uninstall(queue)
        receiver.stop()


SSRF_URLS = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://0.0.0.0:{port}/",
    "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f000001:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://127.1:{port}/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://172.16.0.1/",
    "http://100.64.0.1/",
    "http://[fd00::1]/",
    "http://[fe80::1]/",
    "http://[2002:7f00:1::]/",
    "http://user@127.0.0.1:{port}/",
    "http://user:pw@localhost:{port}/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:{port}/",
    "ftp://127.0.0.1:{port}/",
]


@pytest.mark.parametrize("template", SSRF_URLS)
def test_ssrf_guard_refuses_without_connecting(
    queue: DurableQueue, receiver: Receiver, connects: list[Any], template: str
) -> None:
    deliver = install(queue, allow_hosts=())
    job = settle(queue, deliver.enqueue(template.format(port=receiver.port), {}))
    assert job.status is JobStatus.FAILED
    assert job.attempts == 1
    assert job.error is not None
    assert job.error.type == "Fail"
    assert "refused" in job.error.message
    assert receiver.connections == []
    assert connects == []  # no connection attempted anywhere, not even off this host


@pytest.mark.parametrize("allow", ["127.0.0.1", "127.0.0.0/8", "::ffff:127.0.0.1"])
def test_allow_hosts_lets_a_trusted_address_through(
    queue: DurableQueue, receiver: Receiver, allow: str
) -> None:
    deliver = install(queue, allow_hosts=(allow,))
    assert settle(queue, deliver.enqueue(receiver.url(), {})).status is JobStatus.COMPLETED


def test_the_address_checked_is_the_one_connected_to(
    queue: DurableQueue, receiver: Receiver, connects: list[Any]
) -> None:
    # A rebinding name: the first answer is the allowed 127.0.0.1, every later one
    # a private address. A guard that checked one answer and let the connection
    # resolve again would connect elsewhere (or fail to resolve).
    answers: list[str] = []

    def rebinding(host: str, port: int) -> list[AddressInfo]:
        answers.append(host)
        address = "127.0.0.1" if len(answers) == 1 else "10.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    deliver = install(queue, resolver=rebinding)
    job = settle(queue, deliver.enqueue(receiver.url("/ok", host="rebind.test"), {}))
    assert job.status is JobStatus.COMPLETED
    assert answers == ["rebind.test"]  # resolved once, at connect time
    assert connects == [("127.0.0.1", receiver.port)]
    assert receiver.requests[0].headers["Host"] == f"rebind.test:{receiver.port}"


@pytest.mark.parametrize(
    "addresses", [["10.0.0.1"], ["169.254.169.254"], ["127.0.0.1", "10.0.0.1"], ["::ffff:10.0.0.1"]]
)
def test_a_name_resolving_to_a_forbidden_address_is_refused_before_connecting(
    queue: DurableQueue, receiver: Receiver, connects: list[Any], addresses: list[str]
) -> None:
    def resolver(host: str, port: int) -> list[AddressInfo]:
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    deliver = install(queue, resolver=resolver)  # 127.0.0.1 is allow-listed
    job = settle(queue, deliver.enqueue(receiver.url("/ok", host="evil.test"), {}))
    assert job.status is JobStatus.FAILED
    assert job.attempts == 1
    assert job.error is not None
    assert "refused" in job.error.message
    assert "evil.test" in job.error.message
    assert connects == []
    assert receiver.connections == []


def test_unresolvable_name_is_retried(queue: DurableQueue) -> None:
    deliver = install(queue, resolver=resolve_test_names)
    job = settle(queue, deliver.enqueue("http://nowhere.test/", {}))
    assert job.status is JobStatus.PENDING
    assert job.error is not None
    assert job.error.type == "TransientError"


INVALID_ARGUMENTS = [
    ({"headers": {"webhook-id": "x"}}, "set by the webhook handler"),
    ({"headers": {"X-Bad": "a\r\nInjected: 1"}}, "control characters"),
    ({"headers": {"bad name": "x"}}, "not a valid HTTP header name"),
    ({"headers": {"X-Name": "日本"}}, "U+65E5 at position 0, which an HTTP header cannot carry"),
    ({"headers": {"X-Name": "caf\u00e9 \u2603"}}, "U+2603 at position 5"),
    ({"headers": {"X-Name": " leading"}}, "must not start with white space"),
    ({"headers": {"X-Name": 7}}, "must be a string, got int"),
    ({"headers": [["X-Name", "x"]]}, "headers must be a dict"),
    ({"message_id": "has space"}, "message_id"),
    ({"event_type": ""}, "event_type"),
]


@pytest.mark.parametrize(
    "door", ["enqueue", "options", "enqueue_many", "queue.enqueue", "schedule"]
)
@pytest.mark.parametrize(("arguments", "message"), INVALID_ARGUMENTS)
def test_invalid_arguments_are_refused_when_enqueued(
    queue: DurableQueue, arguments: dict[str, Any], message: str, door: str
) -> None:
    deliver = install(queue)
    url, payload = "https://hooks.example.com/x", {"order": 1}
    enqueue: dict[str, Any] = {
        "enqueue": lambda: deliver.enqueue(url, payload, **arguments),
        "options": lambda: deliver.options(priority=1).enqueue(url, payload, **arguments),
        "enqueue_many": lambda: deliver.enqueue_many(
            [{"url": url, "payload": payload, **arguments}]
        ),
        "queue.enqueue": lambda: queue.enqueue(webhook.TASK_NAME, url, payload, **arguments),
        "schedule": lambda: queue.schedule(
            webhook.TASK_NAME, every=60, args=(url, payload), kwargs=arguments
        ),
    }
    with pytest.raises(ValueError, match=re.escape(message)) as refused:
        enqueue[door]()
    assert str(refused.value).startswith("cannot enqueue jobq.webhook.deliver: ")
    assert queue.list() == []
    assert queue.schedules() == []


def test_the_header_value_is_not_quoted_back(queue: DurableQueue) -> None:
    deliver = install(queue)
    with pytest.raises(ValueError, match="U\\+2603 at position 20") as refused:
        deliver.enqueue(
            "https://hooks.example.com/x",
            {},
            headers={"Authorization": "Bearer s3cr3t-t0ken-\u2603"},
        )
    assert "s3cr3t" not in str(refused.value)
    assert "'Authorization'" in str(refused.value)


@pytest.mark.parametrize(("arguments", "message"), INVALID_ARGUMENTS)
def test_a_stored_job_with_invalid_arguments_fails_at_once(
    queue: DurableQueue, receiver: Receiver, arguments: dict[str, Any], message: str
) -> None:
    # A job stored without the enqueue-time check (by an older jobq, which
    # registered the plain function) still fails on its first attempt.
    older = queue.task(webhook.TASK_NAME)(webhook.deliver_webhook)
    job = older.enqueue(receiver.url(), {}, **arguments)
    install(queue)
    job = settle(queue, job)
    assert job.status is JobStatus.FAILED
    assert job.attempts == 1
    assert job.error is not None
    assert job.error.type == "Fail"
    assert message in job.error.message
    assert receiver.requests == []


def test_a_non_latin1_user_agent_is_refused_in_the_settings() -> None:
    with pytest.raises(ValueError, match="user_agent must be a non-empty Latin-1 string"):
        WebhookSettings(user_agent="jobq-\u2603")


def test_a_queue_without_the_handler_fails_the_job(queue: DurableQueue, receiver: Receiver) -> None:
    deliver = install(queue)
    webhook.uninstall(queue)
    job = settle(queue, deliver.enqueue(receiver.url(), {}))
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert "webhook.install(queue, settings)" in job.error.message


def test_installing_again_replaces_the_settings(queue: DurableQueue, receiver: Receiver) -> None:
    install(queue, user_agent="first")
    deliver = install(queue, user_agent="second")
    assert settle(queue, deliver.enqueue(receiver.url(), {})).status is JobStatus.COMPLETED
    assert receiver.requests[0].headers["User-Agent"] == "second"


# -- what errors and logs show of the URL -----------------------------------------------

PATH_SECRET = "p4th-s3cr3t"
TOKEN = "t0ken-s3cr3t"
PASSWORD = "passw0rd-s3cr3t"
FRAGMENT = "fr4g-s3cr3t"
SECRETS = (PATH_SECRET, TOKEN, PASSWORD, FRAGMENT)


def secret_url(scheme: str, host: str, port: int, *, path: str = f"/hooks/{PATH_SECRET}") -> str:
    return f"{scheme}://hooks:{PASSWORD}@{host}:{port}{path}?token={TOKEN}#{FRAGMENT}"


@pytest.fixture
def untrusted_tls(tmp_path: Path) -> Iterator[Receiver]:
    """An HTTPS receiver whose self-signed certificate nobody trusts."""
    cert, key = make_certificate(tmp_path)
    server = Receiver(tls=server_tls_context(cert, key))
    yield server
    server.stop()


@pytest.fixture
def worker_log(queue: DurableQueue, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record (DEBUG and up, urllib3's included) while jobs run, with the
    job lines the ``jobq.jobs`` logger writes (what ``jobq worker`` shows)."""
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.mark.parametrize(
    ("failure", "status", "error_type", "words"),
    [
        ("refused", JobStatus.PENDING, "TransientError", "Connection refused"),
        ("untrusted TLS", JobStatus.FAILED, "Fail", "is not trusted"),
        ("DNS", JobStatus.PENDING, "TransientError", "Failed to resolve 'hooks.invalid'"),
        ("read timeout", JobStatus.PENDING, "TransientError", "timed out"),
        ("redirect to a closed port", JobStatus.PENDING, "TransientError", "Connection refused"),
        ("answer quoting the URL", JobStatus.FAILED, "Refused", "answered 404"),
    ],
)
def test_a_failed_delivery_shows_only_scheme_host_and_port(
    queue: DurableQueue,
    receiver: Receiver,
    untrusted_tls: Receiver,
    worker_log: pytest.LogCaptureFixture,
    failure: str,
    status: JobStatus,
    error_type: str,
    words: str,
) -> None:
    changes: dict[str, Any] = {}
    if failure == "refused":
        url = secret_url("http", "127.0.0.1", closed_port())
    elif failure == "untrusted TLS":
        url = secret_url("https", "127.0.0.1", untrusted_tls.port)  # requests' own CA bundle
    elif failure == "DNS":
        url = secret_url("http", "hooks.invalid", 8080)
        changes["resolver"] = resolve_test_names  # no DNS server is asked in these tests
    elif failure == "read timeout":
        url = secret_url("http", "127.0.0.1", receiver.port)
        receiver.script[f"/hooks/{PATH_SECRET}?token={TOKEN}"] = [Reply(200, delay=5.0)]
        changes["read_timeout"] = 0.2
    elif failure == "redirect to a closed port":
        url = secret_url("http", "127.0.0.1", receiver.port)
        target = f"http://127.0.0.1:{closed_port()}/next/{PATH_SECRET}?token={TOKEN}"
        receiver.script[f"/hooks/{PATH_SECRET}?token={TOKEN}"] = [
            Reply(307, b"", {"Location": target})
        ]
        changes["follow_redirects"] = True
    else:
        url = secret_url("http", "127.0.0.1", receiver.port)
        target = f"/hooks/{PATH_SECRET}?token={TOKEN}"
        receiver.script[target] = [Reply(404, f"Cannot POST {target} ({url})".encode())]
    deliver = install(queue, **changes)
    origin = url.split("://")[0] + "://" + url.split("@")[1].split("/")[0]

    job = settle(queue, deliver.enqueue(url, {"order": 1}))

    assert job.status is status
    assert job.attempts == 1
    assert job.error is not None
    assert job.error.type == error_type
    assert words in job.error.message
    assert origin in job.error.message
    assert job.error.traceback is not None
    assert origin in job.error.traceback
    logged = worker_log.text
    assert (
        f"jobq.webhook.deliver {'will retry' if status is JobStatus.PENDING else 'failed'}"
        in logged
    )
    for secret in SECRETS:
        assert secret not in job.error.message
        assert secret not in job.error.traceback
        assert secret not in logged
    # One exception, chaining none of requests' or urllib3's (whose text has the URL).
    assert "direct cause" not in job.error.traceback
    assert "During handling" not in job.error.traceback
    assert job.error.traceback.count("Traceback (most recent call last)") == 1


def test_urllib3_debug_lines_hide_the_path_of_a_delivery(
    queue: DurableQueue, receiver: Receiver, worker_log: pytest.LogCaptureFixture
) -> None:
    deliver = install(queue)
    job = settle(queue, deliver.enqueue(secret_url("http", "127.0.0.1", receiver.port), {}))
    assert job.status is JobStatus.COMPLETED
    assert receiver.requests[0].path == f"/hooks/{PATH_SECRET}?token={TOKEN}"
    [line] = [r.getMessage() for r in worker_log.records if "HTTP/1.1" in r.getMessage()]
    assert line == f'http://127.0.0.1:{receiver.port} "POST [redacted] HTTP/1.1" 200 2'
    # Outside a delivery, urllib3's records are left alone.
    logging.getLogger("urllib3.connectionpool").debug("%s", "/kept")
    assert worker_log.records[-1].getMessage() == "/kept"


def test_an_unexpected_exception_is_retried_with_its_chain_cut(queue: DurableQueue) -> None:
    def broken(host: str, port: int) -> list[AddressInfo]:
        try:
            raise LookupError(f"no entry for /hooks/{PATH_SECRET}?token={TOKEN}")
        except LookupError as exc:
            raise RuntimeError(
                f"resolver broke on http://{host}:{port}/hooks/{PATH_SECRET}"
            ) from exc

    deliver = install(queue, resolver=broken, max_attempts=2)
    job = settle(queue, deliver.enqueue(secret_url("http", "hooks.test", 8080), {}))
    assert job.status is JobStatus.PENDING  # retried, as any exception a task raises
    assert job.error is not None
    assert job.error.type == "TransientError"
    assert (
        "webhook to http://hooks.test:8080 failed: RuntimeError: resolver broke"
        in job.error.message
    )
    assert job.error.traceback is not None
    for secret in SECRETS:
        assert secret not in job.error.message
        assert secret not in job.error.traceback
    assert "LookupError" not in job.error.traceback


def test_a_refused_url_is_not_quoted(queue: DurableQueue) -> None:
    deliver = install(queue)
    job = settle(queue, deliver.enqueue(f"http://[::1/hooks/{PATH_SECRET}?token={TOKEN}", {}))
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert "refused: the URL is not valid (Invalid IPv6 URL)" in job.error.message
    assert job.error.traceback is not None
    assert PATH_SECRET not in job.error.traceback
    assert TOKEN not in job.error.traceback


SECRET_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/?#@:%[]"),
    min_size=6,
    max_size=30,
)
PASSWORD_TEXT = st.text(  # what parses as user information
    alphabet=st.one_of(st.characters(whitelist_categories=("L", "N")), st.sampled_from("-._~")),
    min_size=6,
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(path=SECRET_TEXT, token=SECRET_TEXT, password=PASSWORD_TEXT)
def test_the_redactor_removes_every_spelling_of_the_url(
    path: str, token: str, password: str
) -> None:
    import requests
    from requests.utils import requote_uri

    from jobq.handlers.webhook.redact import UrlRedactor

    url = f"https://user:{password}@hooks.example.com:8443/in/{path}?token={token}"
    redact = UrlRedactor(url)
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    spellings = [
        url,
        requote_uri(url),
        str(prepared.url),
        prepared.path_url,
        repr(url),
        f"with url: {prepared.path_url}",
        urllib.parse.unquote(url),
    ]
    for spelling in spellings:
        shown = redact.foreign(f"failed at {spelling} (Caused by Error('x'))")
        assert "(Caused by Error('x'))" in shown
        for secret in (path, token, password):
            for form in {secret.strip(), urllib.parse.quote(secret.strip())}:
                if len(form) >= 4:
                    assert form not in shown, (spelling, shown)
    assert redact.origin == "https://hooks.example.com:8443"
    assert redact.foreign(f"see {url}") == "see https://hooks.example.com:8443"


# -- settings ---------------------------------------------------------------------------


def test_settings_from_mapping() -> None:
    built = WebhookSettings.from_mapping(
        {"allow_hosts": ["10.0.0.0/8", "hooks.internal"], "allowed_schemes": ["https"]}
    )
    assert built.allow_hosts == ("10.0.0.0/8", "hooks.internal")
    assert built.allowed_schemes == ("https",)
    assert SECRET not in repr(WebhookSettings(secret=SECRET))
    with pytest.raises(ConfigurationError, match="unknown JOBQ_WEBHOOK setting"):
        WebhookSettings.from_mapping({"timeout": 3})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"secret": "whsec_not base64!"}, "not valid base64"),
        ({"secret": "short"}, "at least 16 bytes"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"allow_hosts": "10.0.0.1"}, "allow_hosts"),
        ({"allow_hosts": ("not a host!",)}, "not a host name"),
        ({"allowed_schemes": ("ftp",)}, "allowed_schemes"),
        ({"max_retry_after": -1}, "max_retry_after"),
        ({"follow_redirects": "yes"}, "follow_redirects"),
    ],
)
def test_settings_are_validated(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WebhookSettings(**changes)


def test_https_only_refuses_http(queue: DurableQueue, receiver: Receiver) -> None:
    deliver = install(queue, allowed_schemes=("https",))
    job = settle(queue, deliver.enqueue(receiver.url(), {}))
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert "refused" in job.error.message
    assert "'http'" in job.error.message
    assert receiver.connections == []


# -- verify() ---------------------------------------------------------------------------


def signed(
    body: bytes = b'{"a":1}',
    *,
    secret: str | bytes = SECRET,
    at: int = 1000,
    message_id: str = "msg_1",
) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(at),
        "webhook-signature": sign(secret, message_id, at, body),
    }


def test_verify_accepts_a_good_delivery_in_any_header_case() -> None:
    headers = {k.upper(): v for k, v in signed().items()}
    assert verify(SECRET, headers, b'{"a":1}', now=1000) == {"a": 1}
    assert verify(SECRET, signed(), '{"a":1}', now=1000 + 300) == {"a": 1}


def test_verify_accepts_one_good_signature_among_several() -> None:
    headers = signed()
    other = sign("whsec_" + "QUFB" * 8, "msg_1", 1000, b'{"a":1}')
    headers["webhook-signature"] = f"v1a,xyz {other} {headers['webhook-signature']}"
    assert verify(SECRET, headers, b'{"a":1}', now=1000) == {"a": 1}


def test_raw_and_bytes_secrets_sign_alike() -> None:
    raw = "a raw secret of enough length"
    assert verify(raw.encode(), signed(secret=raw), b'{"a":1}', now=1000) == {"a": 1}


@pytest.mark.parametrize(
    ("headers", "body", "now", "message"),
    [
        (signed(), b'{"a":2}', 1000, "no valid v1 signature"),  # tampered body
        (signed(secret="whsec_" + "QUFB" * 8), b'{"a":1}', 1000, "no valid v1 signature"),
        (signed(message_id="msg_1") | {"webhook-id": "msg_2"}, b'{"a":1}', 1000, "no valid"),
        (signed(), b'{"a":1}', 1000 + 301, "old"),  # stale
        (signed(), b'{"a":1}', 1000 - 301, "future"),
        ({"webhook-id": "m", "webhook-timestamp": "1000"}, b"{}", 1000, "missing"),
        (signed() | {"webhook-timestamp": "1e3"}, b'{"a":1}', 1000, "integer"),
        (signed() | {"webhook-signature": "v1,"}, b'{"a":1}', 1000, "no valid"),
    ],
)
def test_verify_refuses(headers: dict[str, str], body: bytes, now: float, message: str) -> None:
    with pytest.raises(WebhookVerificationError, match=message):
        verify(SECRET, headers, body, now=now)


@pytest.mark.parametrize(
    "stamp",
    [
        "9" * 400,
        "9" * 5000,
        "1" * 19,
        "\u0661\u0660\u0660\u0660",
        "\uff11\uff10\uff10\uff10",
        "1000.0",
        "1.5",
        "-5",
        "+1000",
        "",
        "   ",
        "1e3",
        "0x3e8",
        "1_000",
        "1000\x00",
    ],
)
def test_verify_refuses_a_malformed_timestamp_with_its_own_error(stamp: str) -> None:
    headers = signed() | {"webhook-timestamp": stamp}
    with pytest.raises(WebhookVerificationError, match="is not a Unix time in integer seconds"):
        verify(SECRET, headers, b'{"a":1}', now=1000)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"webhook-id": "msg_\ud800"}, "webhook-id header is not valid text"),
        ({"webhook-timestamp": b"1000"}, "webhook-timestamp header is not text"),
        ({"webhook-signature": None}, "webhook-signature header is missing"),
        ({"webhook-signature": "v1,\u65e5\ud800"}, "no valid v1 signature"),
    ],
)
def test_verify_refuses_other_malformed_headers(changes: dict[str, Any], message: str) -> None:
    headers = {k: v for k, v in (signed() | changes).items() if v is not None}
    with pytest.raises(WebhookVerificationError, match=message):
        verify(SECRET, headers, b'{"a":1}', now=1000)


HEADER_TEXT = st.one_of(
    st.text(),
    st.integers(0, 6000).map(lambda n: "7" * n),  # up to 6000 digits
    st.integers().map(str),
    st.floats().map(str),
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "webhook-id": HEADER_TEXT,
            "webhook-timestamp": HEADER_TEXT,
            "webhook-signature": HEADER_TEXT,
        },
    ),
    st.binary(max_size=64),
)
def test_verify_raises_nothing_but_its_own_error(headers: dict[str, str], body: bytes) -> None:
    with contextlib.suppress(WebhookVerificationError):  # the only error allowed
        verify(SECRET, headers, body, now=1000)


@pytest.mark.parametrize(
    ("argument", "value"),
    [("tolerance", -1), ("tolerance", math.nan), ("now", math.nan), ("now", math.inf)],
)
def test_verify_refuses_a_bad_tolerance_or_now(argument: str, value: float) -> None:
    options: dict[str, Any] = {"tolerance": 300, "now": 1000} | {argument: value}
    with pytest.raises(ValueError, match=argument) as refused:
        verify(SECRET, signed(), b'{"a":1}', **options)
    assert not isinstance(refused.value, WebhookVerificationError)


# -- the guard on its own (no network) --------------------------------------------------

FORBIDDEN = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
    "::ffff:127.0.0.0/104",
    "::ffff:10.0.0.0/104",
    "2002:7f00::/24",
    "2002:0a00::/24",
    "64:ff9b::a00:0/104",
    "2001::/32",
    "::/128",
]


@st.composite
def forbidden_addresses(draw: st.DrawFn) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    network = ipaddress.ip_network(draw(st.sampled_from(FORBIDDEN)))
    offset = draw(st.integers(0, network.num_addresses - 1))
    return network[offset]


@settings(max_examples=300, deadline=None)
@given(forbidden_addresses())
def test_every_forbidden_address_is_refused(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    guard = NetGuard()
    assert forbidden_reason(address) is not None
    with pytest.raises(DestinationRefused, match="refused"):
        guard.check_address(address)
    host = f"[{address}]" if address.version == 6 else str(address)
    with pytest.raises(DestinationRefused, match="refused"):
        guard.check_url(f"https://{host}:8443/hook")
    if address.version == 4:  # the same address spelled as one number, in hex
        with pytest.raises(DestinationRefused, match="refused"):
            guard.check_url(f"http://{int(address)}/")
        with pytest.raises(DestinationRefused, match="refused"):
            guard.check_url(f"http://{hex(int(address))}/")


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"]
)
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None
    NetGuard().check_address(address)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.builds(lambda s: "http://" + s, st.text()),
        st.builds(lambda s: "https://" + s + "/x", st.text(alphabet="0123456789.x[]:%@abcdef")),
    )
)
def test_the_url_check_never_crashes(url: str) -> None:
    with contextlib.suppress(DestinationRefused):  # the only error allowed
        NetGuard().check_url(url)
