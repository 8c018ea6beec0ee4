"""Who a process is, as far as another process on the same host can tell: the
host's boot id, the pid namespace and the process's start time (Linux ``/proc``).

A pool records its :class:`ProcessIdentity` in the registry of live pools; a
pool on the same host (same host name, boot id and pid namespace) can then tell
from :func:`process_gone` that the other pool's process no longer exists: its pid
is free, or taken by a process started at another time. Elsewhere (another
host, another boot or namespace, no ``/proc``) nothing can be told, and the
lease stays the rule.

Rule: imports the standard library only.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessIdentity", "process_gone", "process_start", "this_process"]

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as the registry of live pools records it.

    :param host: the host name. :param pid: the process id.
    :param boot_id: the host's boot id, None where unknown.
    :param pid_namespace: the inode of the process's pid namespace, None where unknown.
    :param process_start: start time in clock ticks since boot, None where unknown.
    """

    host: str
    pid: int
    boot_id: str | None
    pid_namespace: int | None
    process_start: int | None

    @property
    def known(self) -> bool:
        """True if other processes on this host can be checked against it."""
        return None not in (self.boot_id, self.pid_namespace, self.process_start)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def boot_id(proc: Path = PROC) -> str | None:
    """The host's boot id, or None."""
    return _read(proc / "sys/kernel/random/boot_id") or None


def pid_namespace(proc: Path = PROC) -> int | None:
    """The inode of this process's pid namespace, or None."""
    try:
        return os.stat(proc / "self/ns/pid").st_ino
    except OSError:
        return None


def _stat(pid: int, proc: Path) -> tuple[str, int] | None:
    """The state (field 3) and start time (field 22) of ``/proc/<pid>/stat``."""
    text = _read(proc / str(pid) / "stat")
    if not text or ")" not in text:
        return None
    # Field 2 (the command) is in parentheses and may hold spaces or ")".
    fields = text.rsplit(")", 1)[1].split()
    try:
        return fields[0], int(fields[22 - 3])
    except (IndexError, ValueError):
        return None


def process_start(pid: int, proc: Path = PROC) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (field 22 of
    ``/proc/<pid>/stat``), or None if it cannot be read (no such process)."""
    stat = _stat(pid, proc)
    return None if stat is None else stat[1]


def this_process(proc: Path = PROC) -> ProcessIdentity:
    """The identity of the calling process."""
    pid = os.getpid()
    return ProcessIdentity(
        host=socket.gethostname(),
        pid=pid,
        boot_id=boot_id(proc),
        pid_namespace=pid_namespace(proc),
        process_start=process_start(pid, proc),
    )


def process_gone(pid: int, started: int, proc: Path = PROC) -> bool:
    """True if process ``pid``, started at ``started`` (clock ticks since boot), of
    this host, boot and pid namespace, no longer runs: its pid is free, or reused
    by a process started at another time, or it is a zombie (killed, not yet
    reaped by its parent). A process we may not signal is alive."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, someone else's
    stat = _stat(pid, proc)
    # Unreadable while kill() found it: it may have just ended; check at the next look.
    return stat is not None and (stat[0] in ("Z", "X") or stat[1] != started)
