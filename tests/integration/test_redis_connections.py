"""Redis connections that fail half-way, on a real server: a command whose answer is
lost is never sent again (it may have run), and a ``rediss://`` URL naming a port
that does not speak TLS fails within the connect timeout instead of hanging."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from jobq.storage.base import NewJob, StorageError
from jobq.storage.redis import RedisStorage
from jobq.storage.redis.server import SOCKET_TIMEOUT, Subscription
from tests.helpers import drop_redis_prefix, redis_test_prefix, require_redis

pytestmark = pytest.mark.redis


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 in front of the test server, on threads of its own.

    After :meth:`cut_after` ``(word)``, the next piece a client sends holding ``word``
    is forwarded, the server's answer read (so the command ran) and thrown away,
    and both connections closed: the client never learns what happened.
    """

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._word: bytes | None = None
        self.cuts = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def cut_after(self, word: bytes) -> None:
        with self._lock:
            self._word = word

    def close(self) -> None:
        self._stopping.set()
        for thread in list(self._threads):
            thread.join(5.0)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(self._upstream, timeout=5.0)
            thread = threading.Thread(target=self._pump, args=(client, upstream), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        with client, upstream:
            while not self._stopping.is_set():
                readable, _, _ = select.select([client, upstream], [], [], 0.05)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is upstream:
                        client.sendall(data)
                        continue
                    upstream.sendall(data)
                    with self._lock:
                        cut = self._word is not None and self._word in data
                        if cut:
                            self._word = None
                    if cut:
                        upstream.settimeout(5.0)
                        assert upstream.recv(65536)  # the answer: the command ran
                        self.cuts += 1
                        return


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = redis_test_prefix()
    yield prefix
    drop_redis_prefix(prefix)


@pytest.fixture
def proxy() -> Iterator[CuttingProxy]:
    parts = urlsplit(require_redis())
    if parts.scheme != "redis" or parts.hostname is None:
        pytest.skip("the proxy needs the test server on TCP (redis://)")
    proxy = CuttingProxy(parts.hostname, parts.port or 6379)
    yield proxy
    proxy.close()


def through(proxy: CuttingProxy, prefix: str) -> RedisStorage:
    """A storage whose connections go through ``proxy``."""
    database = urlsplit(require_redis()).path or "/0"
    return RedisStorage(
        f"redis://127.0.0.1:{proxy.port}{database}", prefix=prefix, durability="ignore"
    )


def test_an_enqueue_whose_answer_is_lost_raises_and_is_stored_once(
    proxy: CuttingProxy, prefix: str
) -> None:
    with through(proxy, prefix) as storage:
        proxy.cut_after(b"EVALSHA")
        with pytest.raises(StorageError, match="Redis error"):
            storage.enqueue(NewJob("t", "[]"), now=1000.0)
        assert proxy.cuts == 1
        # The script ran once, and was not sent again on a new connection.
        assert [job.name for job in storage.list_jobs()] == ["t"]
        storage.enqueue(NewJob("u", "[]"), now=1000.0)  # the next call reconnects
        assert [job.name for job in storage.list_jobs()] == ["t", "u"]


def test_a_claim_whose_answer_is_lost_raises_and_leases_once(
    proxy: CuttingProxy, prefix: str
) -> None:
    with through(proxy, prefix) as storage:
        job_id = storage.enqueue(NewJob("t", "[]"), now=1000.0).job.id
        proxy.cut_after(b"EVALSHA")
        with pytest.raises(StorageError):
            storage.claim(["default"], owner="w", now=1000.0, lease_seconds=30.0)
        # Leased once to a caller that does not know it holds it: the lease expires
        # and the rescue returns it (at least once), rather than a second claim
        # answering "nothing to do" while the job sits leased.
        job = storage.get(job_id)
        assert job is not None
        assert (job.status.value, job.attempts) == ("processing", 1)


def test_a_socket_timeout_by_default_and_the_urls_own_wins(prefix: str) -> None:
    url = f"{require_redis()}?prefix={prefix}&durability=ignore"
    with RedisStorage(url) as storage:
        kwargs = storage._server.client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == SOCKET_TIMEOUT
    with RedisStorage(url + "&socket_timeout=2.5") as storage:
        kwargs = storage._server.client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 2.5


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@pytest.mark.parametrize("where", ["silent", "redis"])
def test_rediss_to_a_port_without_tls_fails_within_the_connect_timeout(
    where: str, silent_port: int
) -> None:
    if where == "redis":
        parts = urlsplit(require_redis())
        if parts.scheme != "redis":
            pytest.skip("needs the test server on TCP (redis://)")
        port = parts.port or 6379
    else:
        port = silent_port
    # No socket_timeout in the URL: the default one is far longer than this wait.
    url = f"rediss://127.0.0.1:{port}/0?socket_connect_timeout=0.5&durability=ignore"
    started = time.monotonic()
    with pytest.raises(StorageError, match="Redis error"):
        RedisStorage(url)
    assert time.monotonic() - started < 5.0
    # The listener's connection too (it has no socket timeout at all).
    started = time.monotonic()
    with pytest.raises(StorageError, match="Redis error"):
        Subscription(f"rediss://127.0.0.1:{port}/0", "wake", timeout=0.5)
    assert time.monotonic() - started < 5.0


def test_the_listeners_connection_has_no_socket_timeout_and_checks_itself(prefix: str) -> None:
    import redis

    subscription = Subscription(require_redis(), f"{prefix}wake", timeout=5.0)
    try:
        pool = subscription._client.connection_pool
        # It waits for messages as long as it is idle; the health check finds a dead one.
        assert pool.connection_kwargs.get("socket_timeout") is None
        assert pool.connection_kwargs["health_check_interval"] > 0
        deadline = time.monotonic() + 10.0
        message = None
        while message is None and time.monotonic() < deadline:
            message = subscription.get(0.1)
        assert message == ("subscribe", "1")
        with redis.Redis.from_url(require_redis()) as client:
            client.publish(f"{prefix}wake", "default")
        while message[0] != "message" and time.monotonic() < deadline:
            message = subscription.get(0.1) or message
        assert message == ("message", "default")
    finally:
        subscription.close()
