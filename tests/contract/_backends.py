"""How the storage contract tests open each backend, in the test process and in
the extra processes some tests start (so a backend is described by JSON).

PostgreSQL joins when ``JOBQ_TEST_POSTGRES_URL`` names a server the tests may
create schemas in (``python3 dev.py test`` starts a throwaway one when
PostgreSQL is installed); each test gets
a schema of its own. Without it those tests are skipped, saying why, unless
``JOBQ_REQUIRE_POSTGRES=1`` (set by CI) turns the skip into a failure.

Redis (``JOBQ_TEST_REDIS_URL``, ``JOBQ_REQUIRE_REDIS``) works the same way, each
test with a key prefix of its own. It is in :data:`CORE_BACKENDS`, which every
module of the contract uses, not in :data:`BACKENDS`, which only the SQL modules
(schema migrations; jobs written in the app's SQL transaction) use.
"""

from __future__ import annotations

from typing import Any

import pytest

from jobq.storage import SQLiteStorage
from jobq.storage.base import Storage
from tests.helpers import (
    drop_postgres_schema,
    drop_redis_prefix,
    postgres_schema_url,
    redis_test_prefix,
    require_redis,
)

BACKENDS = [
    "sqlite3",
    "apsw",
    "sqlite3-no-returning",
    pytest.param("postgres", marks=pytest.mark.postgres),
]
"""Backend ids, as pytest parameters."""

CORE_BACKENDS = [*BACKENDS, pytest.param("redis", marks=pytest.mark.redis)]
""":data:`BACKENDS` and Redis: every backend, for the modules of the contract that
are not about SQL."""


def make_spec(backend: str, tmp_path: Any) -> dict[str, Any]:
    """A JSON-able description of a fresh, empty database for ``backend``."""
    if backend == "postgres":
        return {"backend": backend, "url": postgres_schema_url()}
    if backend == "redis":
        return {"backend": backend, "prefix": redis_test_prefix(), "url": require_redis()}
    driver = "apsw" if backend == "apsw" else "sqlite3"
    return {
        "backend": backend,
        "path": str(tmp_path / f"jobs-{backend}.db"),
        "driver": driver,
        "returning": backend != "sqlite3-no-returning",
    }


def release_spec(spec: dict[str, Any]) -> None:
    """Remove what :func:`make_spec` created outside the test's temporary folder."""
    if spec["backend"] == "postgres":
        drop_postgres_schema(spec["url"])
    elif spec["backend"] == "redis":
        drop_redis_prefix(spec["prefix"])


def open_storage(spec: dict[str, Any]) -> Storage:
    """Open the database that ``spec`` describes."""
    if spec["backend"] == "postgres":
        from jobq.storage.postgres import PostgresStorage

        # The contract tests drive time through `now=`.
        return PostgresStorage(spec["url"], clock="caller", max_connections=4)
    if spec["backend"] == "redis":
        from jobq.storage.redis import RedisStorage

        # The throwaway server keeps nothing on disk: no durability warning.
        return RedisStorage(spec["url"], prefix=spec["prefix"], clock="caller", durability="ignore")
    storage = SQLiteStorage(spec["path"], driver=spec["driver"])
    if not spec["returning"]:
        # Exercise the code path used with SQLite older than 3.35 (no RETURNING).
        storage._returning = False
    return storage
