"""Fixtures of the integration tests that several of their modules use."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    drop_postgres_schema,
    drop_redis_prefix,
    postgres_schema_url,
    redis_location,
    redis_test_prefix,
)


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where the test's jobs live: a SQLite file, unless the test is parametrised
    with ``@both_backends`` (then also a PostgreSQL schema) or ``@three_backends``
    (and a Redis key prefix)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield str(tmp_path / "jobs.db")
        return
    if request.param == "redis":  # with @three_backends: open it with open_location
        prefix = redis_test_prefix()
        yield redis_location(prefix)
        drop_redis_prefix(prefix)
        return
    url = postgres_schema_url()
    yield url
    drop_postgres_schema(url)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can reach (pytest's tmp_path is private to its user)."""
    folder = Path(tempfile.mkdtemp(prefix="jobq-reliability-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for path in folder.rglob("*"):
            if path.is_dir():
                path.chmod(0o755)
        subprocess.run(["rm", "-rf", str(folder)], check=False)
