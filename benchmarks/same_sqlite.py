"""Open a jobq SQLite file, for the benchmarks' own reads and setup writes, with the
SQLite library jobq uses in this process: apsw when it is installed (jobq's default
``driver="auto"``), else the ``sqlite3`` module.

Two SQLite libraries in one process ignore each other's locks: when the second
closes the file it believes it was the last user and removes the shared-memory
file the first has mapped, and the process dies of SIGBUS.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from jobq.storage.sqlite.driver import apsw_installed


def connect(path: str | Path) -> Any:
    """An autocommit connection with ``execute(sql, params).fetchone()`` and
    ``executemany``, on jobq's SQLite library."""
    if apsw_installed():
        import apsw

        return apsw.Connection(str(path))
    return sqlite3.connect(path, isolation_level=None)
