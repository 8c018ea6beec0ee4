"""What worker pools do for their process as a whole: say once, and only where it
matters, that the SQLite in use has the WAL-reset bug, and stop this process's
pools when the interpreter exits (giving running jobs their grace period).

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
from ..storage.sqlite.driver import apsw_installed

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


def check_wal_reset_risk(storage: Any) -> bool:
    """Warn, once per process, when this process's SQLite library has the WAL-reset
    bug (3.7.0 to 3.51.2) and other processes have the same database file open,
    saying what to do; True when nothing is left to check (warned already, or the
    storage is not at risk), False to look again later.

    Other processes are told by the storage's ``other_processes()`` (Linux:
    exact). Where the system does not tell, it warns once all the same: the risk
    is a corrupt database, the fix one ``pip install``. A storage that is not
    SQLite, or whose library is fixed (apsw, SQLite 3.51.3+), is never at risk.
    """
    global _warned_about_wal_reset
    if _warned_about_wal_reset or not getattr(storage, "affected_by_wal_reset_bug", False):
        return True
    others: set[int] | None = storage.other_processes()
    if others is not None and not others:
        return False
    _warned_about_wal_reset = True
    logger.warning("jobq: %s", wal_reset_advice(storage, others))
    return True


def wal_reset_advice(storage: Any, others: set[int] | None) -> str:
    """The warning's text: who else has the file open, the risk, what to do."""
    version = ".".join(map(str, storage.sqlite_version))
    who = (
        f"process{'es' if len(others) > 1 else ''} {', '.join(map(str, sorted(others)))} "
        f"also ha{'ve' if len(others) > 1 else 's'} {storage.path} open"
        if others
        else f"this system does not tell whether other processes write {storage.path}"
    )
    if apsw_installed():
        fix = (
            "apsw is installed but this queue forces driver='sqlite3': remove that "
            "option (or JOBQ_DRIVER) and jobq uses apsw's fixed SQLite"
        )
    else:
        fix = (
            'pip install "jobq[apsw]" (jobq then uses apsw\'s bundled, fixed SQLite on '
            "its own), or run a Python whose sqlite3 module has SQLite 3.51.3 or newer"
        )
    return (
        f"{who}, and this process's SQLite {version} (Python's sqlite3 module) has the "
        "WAL-reset bug of SQLite 3.7.0 to 3.51.2, which can corrupt a database that "
        f"several processes write at once. To fix it: {fix}"
    )


@atexit.register
def _stop_pools_at_exit() -> None:
    for pool, pid in list(_live_pools.items()):
        if pid == os.getpid():
            pool.stop(timeout=defaults.STOP_GRACE_SECONDS)
