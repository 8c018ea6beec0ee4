"""The SQLite backend: :class:`SQLiteStorage`, jobs in one SQLite file shared by
threads and processes on one machine (see :mod:`jobq.storage.sqlite.storage`).

Needs only the standard library (``driver="apsw"`` needs the ``jobq[apsw]`` extra).
"""

from .storage import SQLiteStorage as SQLiteStorage

__all__ = ["SQLiteStorage"]
