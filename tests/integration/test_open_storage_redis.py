"""Opening Redis as users do, by URL (``open_storage``, ``DurableQueue``), on a real
server: jobq's options in the query, redis-py's kept, bad ones refused clearly,
and ``rediss://`` (TLS) on a throwaway TLS server."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq import DurableQueue
from jobq.storage import StorageError, open_storage
from jobq.storage.redis import RedisStorage
from tests.helpers import drop_redis_prefix, free_port, redis_test_prefix, require_redis, wait_for
from tests.integration._redis_url import options_url

pytestmark = pytest.mark.redis


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = redis_test_prefix()
    yield prefix
    drop_redis_prefix(prefix)


def keys(prefix: str) -> list[str]:
    import redis

    with redis.Redis.from_url(require_redis(), decode_responses=True) as client:
        return sorted(client.scan_iter(match=f"{prefix}*"))


def test_the_prefix_from_the_url_holds_every_key(prefix: str) -> None:
    queue = DurableQueue(options_url(prefix))
    try:
        assert isinstance(queue.storage, RedisStorage)
        assert queue.storage.prefix == prefix

        @queue.task("t")
        def t() -> None: ...

        job = t.enqueue()
        assert f"{prefix}job:{job.id}" in keys(prefix)
        assert "redis://" in repr(queue.storage)
    finally:
        queue.close()


def test_the_durability_option_from_the_url(prefix: str) -> None:
    base = options_url(prefix).replace("&durability=ignore", "")
    # The throwaway server keeps nothing on disk: a crash would lose accepted jobs.
    with pytest.warns(RuntimeWarning, match="may lose accepted jobs"):
        open_storage(base).close()
    with pytest.raises(StorageError, match=r"appendonly is off.*\?durability=ignore"):
        open_storage(base + "&durability=refuse")
    with pytest.raises(ValueError, match="durability must be 'warn', 'refuse' or 'ignore'"):
        open_storage(base + "&durability=strict")


def test_redis_py_options_stay_and_unknown_ones_are_refused_by_name(prefix: str) -> None:
    url = options_url(prefix)
    with open_storage(url + "&socket_timeout=5&health_check_interval=10") as storage:
        assert storage.stats(now=0.0).queues == {}
    with pytest.raises(StorageError, match=r"unknown query parameter.*'prefx'"):
        open_storage(url + "&prefx=a:")


def test_an_option_in_the_url_and_as_an_argument_must_agree(prefix: str) -> None:
    url = options_url(prefix)
    with RedisStorage(url, prefix=prefix, durability="ignore") as storage:
        assert storage.prefix == prefix
    with pytest.raises(ValueError, match="prefix is 'other:' as an argument but"):
        RedisStorage(url, prefix="other:")
    with pytest.raises(ValueError, match="prefix must be a non-empty str"):
        open_storage(url.replace("prefix=", "prefix=&old="))


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[int]:
    """A throwaway redis-server that speaks TLS only, with a self-signed certificate."""
    require_redis()
    program, openssl = shutil.which("redis-server"), shutil.which("openssl")
    if program is None or openssl is None:
        pytest.skip("needs redis-server and openssl on this machine for a TLS server")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = free_port()
    server = subprocess.Popen(
        [
            program,
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(cert),
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if server.poll() is not None:
            pytest.skip("this redis-server cannot serve TLS")
        wait_for(lambda: accepts(port) or server.poll() is not None, "the TLS server", 30)
        if server.poll() is not None:
            pytest.skip("this redis-server cannot serve TLS (built without it)")
        yield port
    finally:
        server.kill()
        server.wait(30)


def test_a_rediss_url_opens_a_redis_storage_over_tls(tls_server: int) -> None:
    url = f"rediss://127.0.0.1:{tls_server}/0?ssl_cert_reqs=none&durability=ignore"
    queue = DurableQueue(url)
    try:
        assert isinstance(queue.storage, RedisStorage)

        @queue.task("t")
        def t(n: int) -> int:
            return n

        job = t.enqueue(7)
        assert queue.get(job.id).name == "t"
    finally:
        queue.close()
