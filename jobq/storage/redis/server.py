"""Redis seen from one process: a connection pool, the scripts registered once and
run by ``EVALSHA``, errors in jobq's words, and jobs read back from their hashes.

redis-py's pool notices ``fork()`` itself: a child opens connections of its own
and never uses the parent's sockets.

Rule: imports redis and the storage contract; knows the scripts' names, not
what they do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, cast

from ...job import make_job
from ..base import Job, JobError, JobStatus, StorageError
from .lua import HELPERS, SCRIPTS

try:
    import redis
    import redis.exceptions
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("Redis storage needs the redis package: pip install 'jobq[redis]'") from exc

Clock = Literal["database", "caller"]
Arg = str | int | float

SOCKET_TIMEOUT = 120.0
"""Seconds a command may wait for the server's answer unless the URL sets
``socket_timeout``: far above the longest script (one ``enqueue_many`` of 100,000
jobs, a single script run, took 5 to 14 s on a busy two-core machine), so that it
ends only a hung connection."""

_STATUS = {status.value: status for status in JobStatus}


def redacted(url: str) -> str:
    """The URL without its password, for messages and reprs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    auth, _, host = rest.rpartition("@")
    user = auth.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in auth else url


def text(value: float | None) -> str:
    """A number as a script argument (``repr`` round-trips a float); None as ``""``."""
    return "" if value is None else repr(float(value))


class Server:
    """The connections of this process to one Redis database, and the scripts.

    :param clock: ``"database"``: scripts read the server's clock; ``"caller"``: they
        use the ``now`` passed in.
    """

    def __init__(
        self, url: str, *, prefix: str, clock: Clock, max_connections: int, timeout: float
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.clock = clock
        try:
            self.client: redis.Redis = redis.Redis.from_url(
                url,
                decode_responses=True,
                encoding_errors="surrogatepass",
                max_connections=max_connections,
                socket_connect_timeout=timeout,
                socket_timeout=SOCKET_TIMEOUT,
                # Never send a command twice: a script whose answer was lost may have
                # run, and running it again would store or lease twice.
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError as exc:
            raise StorageError(f"bad Redis URL {redacted(url)!r}: {exc}") from exc
        handshake_within_connect_timeout(self.client)
        check_parameters(self.client, url)
        self._scripts = {
            name: self.client.register_script(HELPERS + body) for name, body in SCRIPTS.items()
        }
        self.closed = False

    def run(self, script: str, now: float | None, *args: Arg) -> Any:
        """Run the named script (``EVALSHA``, loading it once if the server lacks it)
        with the prefix and the time in front of ``args``."""
        when = "" if self.clock == "database" or now is None else text(now)
        with errors():
            return self._scripts[script](keys=[], args=[self.prefix, when, *args])

    def load_scripts(self) -> None:
        """Register every script with the server now, in one round trip (and so check
        that it answers)."""
        with errors():
            pipe = self.client.pipeline(transaction=False)
            for script in self._scripts.values():
                pipe.script_load(script.script)
            for script, sha in zip(self._scripts.values(), pipe.execute(), strict=True):
                script.sha = sha

    # Reads, typed: the client decodes every answer to str (decode_responses).

    def hashes(self, keys: Sequence[str]) -> list[dict[str, str]]:
        """The hashes at ``keys`` in one round trip (empty for a missing key)."""
        with errors():
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            return cast("list[dict[str, str]]", pipe.execute())

    def members(self, key: str) -> set[str]:
        """The members of the set at ``key``."""
        with errors():
            return cast("set[str]", self.client.smembers(key))

    def ids(self, key: str, after: int | None, count: int, *, descending: bool) -> list[str]:
        """Up to ``count`` members of the sorted set at ``key`` scored above ``after``
        (below, when ``descending``), in score order."""
        with errors():
            if descending:
                top = "+inf" if after is None else f"({after}"
                found = self.client.zrevrangebyscore(key, top, "-inf", start=0, num=count)
            else:
                bottom = "-inf" if after is None else f"({after}"
                found = self.client.zrangebyscore(key, bottom, "+inf", start=0, num=count)
        return cast("list[str]", found)

    def items(self, key: str) -> list[str]:
        """The elements of the list at ``key``."""
        with errors():
            return cast("list[str]", self.client.lrange(key, 0, -1))

    def config(self, names: Sequence[str]) -> dict[str, str]:
        """The server settings ``names`` (``CONFIG GET``); empty when the server
        does not allow the command (managed services often rename it)."""
        found: dict[str, str] = {}
        for name in names:
            try:
                found.update(cast("dict[str, str]", self.client.config_get(name)))
            except redis.exceptions.ResponseError:
                return {}
            except redis.exceptions.RedisError as exc:
                raise StorageError(f"Redis error: {exc}".strip()) from exc
        return found

    def close(self) -> None:
        """Close this process's connections."""
        self.closed = True
        self.client.close()
        self.client.connection_pool.disconnect()


class _TLSConnection(redis.SSLConnection):
    """redis-py's TLS connection, with the handshake bounded by the connect timeout
    rather than the socket timeout (which may be None: a ``rediss://`` URL naming a
    plain port would wait forever for the server's hello)."""

    def _connect(self) -> Any:
        timeout = self.socket_timeout
        self.socket_timeout = self.socket_connect_timeout
        try:
            sock = super()._connect()  # type: ignore[no-untyped-call]
        finally:
            self.socket_timeout = timeout
        sock.settimeout(timeout)
        return sock


def handshake_within_connect_timeout(client: redis.Redis) -> None:
    """Make ``client``'s TLS connections (``rediss://``) finish their handshake within
    the connect timeout."""
    pool = client.connection_pool
    if pool.connection_class is redis.SSLConnection:
        pool.connection_class = _TLSConnection


def check_parameters(client: redis.Redis, url: str) -> None:
    """Refuse now, not at the first connection, a URL whose query names a parameter
    that redis-py's connections do not take (redis-py passes them all on)."""
    pool = client.connection_pool
    try:
        pool.connection_class(**pool.connection_kwargs)  # an object only: no socket yet
    except TypeError as exc:
        raise StorageError(
            f"bad Redis URL {redacted(url)!r}: an unknown query parameter ({exc}); "
            "jobq's own are prefix and durability"
        ) from exc


class Subscription:
    """A connection of its own to the server (outside the pool: pub/sub holds it for
    as long as it listens), subscribed to ``channel``. Made and used by one thread.

    Raises :class:`StorageError` when the server cannot be reached, as :meth:`get`
    does when the connection drops.
    """

    HEALTH_CHECK_SECONDS = 30
    """A silent connection is checked (``PING``) this often, so a dead one is noticed."""

    def __init__(self, url: str, channel: str, *, timeout: float) -> None:
        with errors():
            self._client: redis.Redis = redis.Redis.from_url(
                url,
                decode_responses=True,
                encoding_errors="surrogatepass",
                max_connections=1,
                socket_connect_timeout=timeout,
                socket_keepalive=True,
                health_check_interval=self.HEALTH_CHECK_SECONDS,
                client_name=f"jobq-wake-{os.getpid()}",  # CLIENT LIST shows whose it is
            )
            handshake_within_connect_timeout(self._client)
            self._pubsub = self._client.pubsub()  # type: ignore[no-untyped-call]
            try:
                self._pubsub.subscribe(channel)
            except BaseException:
                self.close()
                raise

    def get(self, timeout: float) -> tuple[str, str] | None:
        """The next message as (kind, data), waiting up to ``timeout`` seconds, or
        None. Kinds: ``"subscribe"`` (the server confirms the subscription: on
        connecting, and again if redis-py reconnected by itself), ``"message"``."""
        with errors():
            message = self._pubsub.get_message(timeout=timeout)
        if message is None:
            return None
        return str(message["type"]), str(message["data"])

    def close(self) -> None:
        """Close the connection (errors ignored: it may be gone already)."""
        try:
            self._pubsub.close()
            self._client.close()
        except (redis.exceptions.RedisError, OSError):
            pass


@contextmanager
def errors() -> Iterator[None]:
    """redis-py's errors as :class:`StorageError`."""
    try:
        yield
    except redis.exceptions.RedisError as exc:
        raise StorageError(f"Redis error: {exc}".strip()) from exc


def _opt_float(value: str | None) -> float | None:
    return None if value is None else float(value)


def to_job(flat: Sequence[str] | Mapping[str, str]) -> Job:
    """The job in a hash, as ``HGETALL`` returns it (a flat list or a dict)."""
    h = flat if isinstance(flat, Mapping) else dict(zip(flat[::2], flat[1::2], strict=True))
    error_type = h.get("error_type")
    return make_job(
        int(h["id"]),
        h["queue"],
        h["name"],
        h["payload"],
        int(h["priority"]),
        _STATUS[h["status"]],
        int(h["attempts"]),
        int(h["max_attempts"]),
        float(h["run_at"]),
        h.get("lease_owner"),
        h.get("lease_token"),
        _opt_float(h.get("lease_expires_at")),
        None
        if error_type is None
        else JobError(error_type, h.get("error_message", ""), h.get("error_traceback")),
        h.get("result"),
        h.get("progress"),
        h.get("unique_key"),
        h.get("cancel_requested") == "1",
        float(h["created_at"]),
        _opt_float(h.get("started_at")),
        _opt_float(h.get("finished_at")),
        float(h["updated_at"]),
        _opt_float(h.get("expires_at")),
        h.get("limit_key"),
        waiting_for=int(h.get("waiting_for", 0)) if h["status"] == "pending" else 0,
        result_from=None if h.get("result_from") is None else int(h["result_from"]),
        parent_result=h.get("parent_result"),
        on_dependency_failure=h.get("on_dependency_failure"),
        batch_id=None if (batch := h.get("batch_id")) is None else int(batch),
    )
