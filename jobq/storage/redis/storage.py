"""RedisStorage: the core of the :class:`~jobq.storage.base.Storage` contract on Redis.

Not offered to users yet: :func:`jobq.storage.open_storage` does not open
``redis://`` URLs, and the parts of the contract listed as not done in
:mod:`jobq.storage.redis` raise :class:`NotImplementedError`. Needs the
``jobq[redis]`` extra (``hiredis``, if installed, makes replies cheaper to parse).

Rule: imports its own parts, the checking layer and the storage contract.
"""

from __future__ import annotations

import warnings
from typing import Any, NoReturn, cast

from ...validate import check_seconds
from ..batches import BatchStore
from ..checked import CheckedStorage
from ..dependencies import DependencyStore
from ..external import ExternalStore
from .admin import RedisAdmin
from .batches import RedisBatches
from .bulk import RedisBulk
from .durability import SETTINGS, Durability, judge
from .history import RedisHistory
from .inserts import RedisInserts
from .job_logs import RedisJobLogs
from .leases import RedisLeases
from .schedules import RedisSchedules
from .server import Clock, Server, redacted
from .workers import RedisWorkers

__all__ = ["RedisStorage"]

DEFAULT_PREFIX = "jobq:"
"""What every key of a :class:`RedisStorage` starts with, unless it is given another."""


class NotYet:
    """A part of the contract the Redis backend does not implement yet: each of its
    methods raises :class:`NotImplementedError` naming the operation."""

    def __init__(self, what: str) -> None:
        self._what = what

    def __getattr__(self, operation: str) -> Any:
        def refuse(*args: object, **kwargs: object) -> NoReturn:
            raise NotImplementedError(
                f"{self._what} ({operation}) is not implemented on Redis yet; "
                "use SQLite or PostgreSQL for it"
            )

        return refuse


class RedisStorage(CheckedStorage):
    """Jobs in a Redis database, shared by every process on every host.

    ::

        storage = RedisStorage("redis://cache.internal:6379/0")

    :param url: a ``redis://``, ``rediss://`` or ``unix://`` URL (database number
        in the path, as redis-py reads it).
    :param prefix: what every key starts with (default ``"jobq:"``), so one
        database can hold several queues' data or other data beside it.
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
        jobs, is always refused. See :mod:`jobq.storage.redis.durability`.

    Raises :class:`~jobq.storage.base.StorageError` if the server cannot be
    reached. Use as a context manager, or call :meth:`close`. The methods are
    documented on :class:`~jobq.storage.base.Storage`.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Clock = "database",
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        durability: Durability = "warn",
    ) -> None:
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
            url,
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
        self._dependencies = cast(DependencyStore, NotYet("job dependencies"))
        self._external = cast(ExternalStore, NotYet("jobs written in the app's transaction"))
        try:
            self._server.load_scripts()
            warning = judge(self._server.config(SETTINGS), durability)
        except BaseException:
            self._server.close()
            raise
        if warning is not None:
            warnings.warn(warning, RuntimeWarning, stacklevel=2)

    def close(self) -> None:
        self._server.close()

    def __repr__(self) -> str:
        return f"RedisStorage({redacted(self.url)!r}, prefix={self.prefix!r}, clock={self.clock!r})"
