"""Which other processes have a SQLite database open, for the WAL-reset warning.

Every connection to a database in WAL mode holds a shared POSIX lock on a byte
of its ``-shm`` file for as long as it is open, and the kernel lists the
holders of POSIX locks in ``/proc/locks`` (Linux) with their process ids. So
the processes that have the file open can be read from there without opening
the file: opening and closing another descriptor on it would drop this
process's own SQLite locks (POSIX locks belong to the process, not the
descriptor). Locks are matched by inode number alone: on some filesystems
(btrfs) the device numbers ``stat`` and ``/proc/locks`` give differ, and a
wrong match only costs a warning.

Where ``/proc/locks`` cannot be read (macOS, Windows, a locked-down container)
the answer is None: "cannot tell"; the caller then looks for leases held by
other processes in the jobs table.

Rule: standard library only.
"""

from __future__ import annotations

import os

PROC_LOCKS = "/proc/locks"


def lock_holders(inodes: set[int], locks_text: str) -> set[int]:
    """Process ids holding POSIX locks on any of ``inodes``, read from the text of
    ``/proc/locks`` (lines like ``1: POSIX  ADVISORY  READ 4242 08:02:1311 128 128``;
    ``->`` marks a waiter, whose lock is not held yet)."""
    holders: set[int] = set()
    for line in locks_text.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->" or fields[1] != "POSIX":
            continue
        try:
            pid = int(fields[4])
            inode = int(fields[5].rsplit(":", 1)[1])
        except (ValueError, IndexError):
            continue
        if inode in inodes:
            holders.add(pid)
    return holders


def other_processes(path: str, *, locks_file: str | None = None) -> set[int] | None:
    """Ids of the other processes (not this one) that have the database ``path``
    open, from the locks on it and its ``-shm`` file; None when this system does
    not tell (no readable ``locks_file``, default :data:`PROC_LOCKS`)."""
    inodes = set()
    for name in (path, path + "-shm"):
        try:
            inodes.add(os.stat(name).st_ino)
        except OSError:
            continue
    try:
        with open(locks_file or PROC_LOCKS, encoding="ascii", errors="replace") as file:
            text = file.read()
    except OSError:
        return None
    # A pid of 0 is a holder in another pid namespace (another container): another process.
    return lock_holders(inodes, text) - {os.getpid()}
