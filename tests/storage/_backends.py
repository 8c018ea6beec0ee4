"""How the storage contract tests open each backend, in the test process and in
the extra processes some tests start (so a backend is described by JSON).

PostgreSQL joins when ``JOBQ_TEST_POSTGRES_URL`` names a server the tests may
create schemas in (``python3 dev.py test`` starts a throwaway one when
PostgreSQL is installed); each test gets
a schema of its own. Without it those tests are skipped, saying why, unless
``JOBQ_REQUIRE_POSTGRES=1`` (set by CI) turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from jobq.storage import SQLiteStorage
from jobq.storage.base import Storage

POSTGRES_URL = os.environ.get("JOBQ_TEST_POSTGRES_URL", "")
NO_POSTGRES = (
    "no PostgreSQL server for the tests: set JOBQ_TEST_POSTGRES_URL "
    "or install PostgreSQL's server (Debian: apt install postgresql) and run "
    "`python3 dev.py test`, which starts a throwaway one"
)

BACKENDS = [
    "sqlite3",
    "apsw",
    "sqlite3-no-returning",
    pytest.param("postgres", marks=pytest.mark.postgres),
]
"""Backend ids, as pytest parameters."""


def require_postgres() -> str:
    """The test server's URL; skips (or fails, under JOBQ_REQUIRE_POSTGRES=1) without one."""
    if POSTGRES_URL:
        return POSTGRES_URL
    if os.environ.get("JOBQ_REQUIRE_POSTGRES") == "1":
        pytest.fail(NO_POSTGRES)
    pytest.skip(NO_POSTGRES)


def postgres_schema_url() -> str:
    """A ``postgresql://`` URL whose ``search_path`` is a new, empty schema."""
    import psycopg

    base = require_postgres()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-c%20search_path%3D{schema}"


def drop_postgres_schema(url: str) -> None:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    schema = str(conninfo_to_dict(url)["options"]).rsplit("=", 1)[1]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def make_spec(backend: str, tmp_path: Any) -> dict[str, Any]:
    """A JSON-able description of a fresh, empty database for ``backend``."""
    if backend == "postgres":
        return {"backend": backend, "url": postgres_schema_url()}
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


def open_storage(spec: dict[str, Any]) -> Storage:
    """Open the database that ``spec`` describes."""
    if spec["backend"] == "postgres":
        from jobq.storage.postgres import PostgresStorage

        # The contract tests drive time through `now=`.
        return PostgresStorage(spec["url"], clock="caller", max_connections=4)
    storage = SQLiteStorage(spec["path"], driver=spec["driver"])
    if not spec["returning"]:
        # Exercise the code path used with SQLite older than 3.35 (no RETURNING).
        storage._returning = False
    return storage
