"""How the storage contract tests open each backend, in the test process and in
the extra processes some tests start (so a backend is described by JSON)."""

from __future__ import annotations

from typing import Any

from jobq.storage import SQLiteStorage
from jobq.storage.base import Storage

BACKENDS = ["sqlite3", "apsw", "sqlite3-no-returning"]
"""Backend ids; PostgreSQL joins this list later."""


def make_spec(backend: str, tmp_path: Any) -> dict[str, Any]:
    """A JSON-able description of a fresh, empty database for ``backend``."""
    driver = "apsw" if backend == "apsw" else "sqlite3"
    return {
        "backend": backend,
        "path": str(tmp_path / f"jobs-{backend}.db"),
        "driver": driver,
        "returning": backend != "sqlite3-no-returning",
    }


def open_storage(spec: dict[str, Any]) -> Storage:
    """Open the database that ``spec`` describes."""
    storage = SQLiteStorage(spec["path"], driver=spec["driver"])
    if not spec["returning"]:
        # Exercise the code path used with SQLite older than 3.35 (no RETURNING).
        storage._returning = False
    return storage
