"""What worker pools do for their process as a whole: say once that the SQLite in
use has the WAL-reset bug, and stop this process's pools when the interpreter exits
(giving running jobs their grace period).

Rule: knows a pool only as something with ``stop(timeout)``; imports no other
part of the worker.
"""

from __future__ import annotations

import atexit
import logging
import os
import weakref
from typing import Any, Protocol

from .. import defaults

logger = logging.getLogger("jobq.worker")


class _Stoppable(Protocol):
    def stop(self, timeout: float = ...) -> bool: ...


_live_pools: weakref.WeakKeyDictionary[_Stoppable, int] = weakref.WeakKeyDictionary()
_warned_about_wal_reset = False


def track(pool: _Stoppable) -> None:
    """Stop ``pool`` at interpreter exit if it still runs then (in this process only)."""
    _live_pools[pool] = os.getpid()


def untrack(pool: _Stoppable) -> None:
    """``pool`` has stopped: nothing to do for it at exit."""
    _live_pools.pop(pool, None)


def warn_if_sqlite_is_affected(storage: Any) -> None:
    """Log once per process that the storage's SQLite has the WAL-reset bug."""
    global _warned_about_wal_reset
    if not _warned_about_wal_reset and getattr(storage, "affected_by_wal_reset_bug", False):
        _warned_about_wal_reset = True
        logger.warning(
            "jobq: SQLite %s has the WAL-reset bug (3.7.0 to 3.51.2), which matters only "
            "when several processes write one database file at once; for that, install "
            "jobq[apsw] and use DurableQueue(..., driver='apsw'), which bundles a fixed SQLite",
            ".".join(map(str, getattr(storage, "sqlite_version", ()))) or "",
        )


@atexit.register
def _stop_pools_at_exit() -> None:
    for pool, pid in list(_live_pools.items()):
        if pid == os.getpid():
            pool.stop(timeout=defaults.STOP_GRACE_SECONDS)
