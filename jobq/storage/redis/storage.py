"""RedisStorage: the :class:`~jobq.storage.base.Storage` contract on Redis.

Opened by :func:`jobq.storage.open_storage` for ``redis://`` and ``rediss://``
URLs, so ``DurableQueue("redis://host:6379/0")``, ``JOBQ_DATABASE`` and ``--db``
take one; jobs written in the app's SQL transaction are refused (see
:mod:`.external`). Needs the ``jobq[redis]`` extra (``hiredis``,
if installed, makes replies cheaper to parse).

- **Wake-ups**: the scripts that make jobs runnable publish the queue's name on
  the channel ``<prefix>wake`` (once per queue per script run); worker pools
  subscribe (:meth:`RedisStorage.subscribe`) and look for work at once, on any
  host. Polling remains the fallback.
- **Processes**: redis-py's pool opens new connections in a child after
  ``fork()``; the listening thread and its connection are per process too.

Rule: imports its own parts, the checking layer and the storage contract.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import cast

from ...validate import check_seconds
from ..base import StorageError
from ..batches import BatchStore
from ..checked import CheckedStorage
from ..listening import ProcessListener
from .admin import RedisAdmin
from .batches import RedisBatches
from .bulk import RedisBulk
from .dependencies import RedisDependencies
from .durability import SETTINGS, Durability, judge
from .external import RedisExternal
from .history import RedisHistory
from .inserts import RedisInserts
from .job_logs import RedisJobLogs
from .leases import RedisLeases
from .listener import CHANNEL, Listener
from .options import split_url
from .schedules import RedisSchedules
from .server import Clock, Server, redacted
from .workers import RedisWorkers

__all__ = ["RedisStorage"]

DEFAULT_PREFIX = "jobq:"
"""What every key of a :class:`RedisStorage` starts with, unless it is given another."""


class RedisStorage(CheckedStorage):
    """Jobs in a Redis database, shared by every process on every host.

    ::

        storage = RedisStorage("redis://cache.internal:6379/0")

    :param url: a ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL (database
        number in the path, as redis-py reads it). Its query may give jobq's options
        ``prefix`` and ``durability`` (``redis://host:6379/0?prefix=shop:&durability=refuse``),
        taken out before redis-py reads the URL; other query parameters are
        redis-py's (``socket_timeout``, ``ssl_cert_reqs``, ...).
    :param prefix: what every key starts with (default ``"jobq:"``), so one
        database can hold several queues' data or other data beside it; also the
        URL's ``prefix`` parameter.
    :param clock: ``"database"`` (default): times come from the server's clock
        (``TIME``) and the ``now`` arguments are ignored; ``"caller"``: the ``now``
        passed to each call is used, as with SQLite (for tests that drive time).
    :param max_connections: most connections this process opens (default 10).
    :param connect_timeout: seconds to wait for a connection (default 10).
    :param durability: what to do when the server could lose accepted jobs in a
        crash (it does unless it runs with ``appendonly yes`` and ``appendfsync
        always``): ``"warn"`` (default, a :class:`RuntimeWarning`), ``"refuse"``
        (raise :class:`~jobq.storage.base.StorageError`) or ``"ignore"``. A
        ``maxmemory-policy`` other than ``noeviction``, which lets the server delete
        jobs, is always refused. See :mod:`jobq.storage.redis.durability`. Also the
        URL's ``durability`` parameter.

    Raises :class:`~jobq.storage.base.StorageError` if the server cannot be
    reached or the URL is bad, ValueError for a bad option (or one given both in
    the URL and as an argument, with different values). Use as a context manager,
    or call :meth:`close`. The methods are documented on
    :class:`~jobq.storage.base.Storage`.

    A command is never sent twice: when the connection drops after a call was sent,
    the call raises :class:`~jobq.storage.base.StorageError` and its change may or
    may not have been applied (as with a lost commit answer on PostgreSQL), so an
    enqueue is at least once across such a failure; give the job a ``unique_key``
    where a second copy matters. A command waits at most 120 s for its answer unless
    the URL sets ``socket_timeout``; a ``rediss://`` handshake ends within
    ``connect_timeout``.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        clock: Clock = "database",
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        durability: Durability | None = None,
    ) -> None:
        server_url, given = split_url(url)
        prefix = _merge("prefix", prefix, given, DEFAULT_PREFIX)
        durability = cast(Durability, _merge("durability", durability, given, "warn"))
        if clock not in ("database", "caller"):
            raise ValueError(f"clock must be 'database' or 'caller', got {clock!r}")
        if not isinstance(prefix, str) or not prefix:
            raise ValueError(f"prefix must be a non-empty str, got {prefix!r}")
        if type(max_connections) is not int or max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections!r}")
        check_seconds("connect_timeout", connect_timeout)
        if durability not in ("warn", "refuse", "ignore"):
            raise ValueError(f"durability must be 'warn', 'refuse' or 'ignore', got {durability!r}")
        self.url = url
        self.prefix = prefix
        self.clock = clock
        self._server = Server(
            server_url,
            prefix=prefix,
            clock=clock,
            max_connections=max_connections,
            timeout=connect_timeout,
        )
        self._inserts = RedisInserts(self._server)
        self._leases = RedisLeases(self._server)
        self._admin = RedisAdmin(self._server)
        self._schedules = RedisSchedules(self._server)
        self._workers = RedisWorkers(self._server)
        self._job_logs = RedisJobLogs(self._server)
        self._bulk = RedisBulk(self._server)
        self._history = RedisHistory(self._server)
        self._batches: BatchStore = RedisBatches(self._server)
        self._dependencies = RedisDependencies(self._server)
        self._external = RedisExternal()  # refused: see .external
        self._listener = ProcessListener(
            lambda: Listener(self._server.url, self.prefix + CHANNEL, timeout=connect_timeout)
        )
        try:
            self._server.load_scripts()
            warning = judge(self._server.config(SETTINGS), durability)
        except BaseException:
            self._server.close()
            raise
        if warning is not None:
            warnings.warn(warning, RuntimeWarning, stacklevel=_first_frame_outside_jobq())

    def subscribe(self, callback: Callable[[str | None], None]) -> Callable[[], None]:
        """Call ``callback(queue_name)`` when any process, on any host, makes jobs of
        ``queue_name`` runnable (through pub/sub, on a connection of its own), and
        ``callback(None)`` when some may have been missed (on (re)connecting);
        returns the function that unsubscribes. The listening thread runs while
        anyone is subscribed; after ``fork()`` a child starts its own."""
        if self._server.closed:
            raise StorageError("the Redis storage is closed")
        return self._listener.subscribe(callback)

    def close(self) -> None:
        self._listener.close()
        self._server.close()

    def __repr__(self) -> str:
        return f"RedisStorage({redacted(self.url)!r}, prefix={self.prefix!r}, clock={self.clock!r})"


def _merge(name: str, argument: str | None, given: dict[str, str], default: str) -> str:
    """An option given as an argument or in the URL (the same value if both), else
    its default."""
    in_url = given.get(name)
    if argument is not None and in_url is not None and argument != in_url:
        raise ValueError(
            f"{name} is {argument!r} as an argument but {in_url!r} in the URL; give it once"
        )
    if argument is not None:
        return argument
    return default if in_url is None else in_url


def _first_frame_outside_jobq() -> int:
    """The ``stacklevel`` that points a warning at the app's line that opened the
    queue (``DurableQueue(...)``), not at jobq's own frames in between."""
    level = 1
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith("jobq."):
        frame = frame.f_back
        level += 1
    return level
