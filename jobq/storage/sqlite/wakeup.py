"""The wake-up channel: processes of one host that share a SQLite file tell each
other "a job is ready" without polling.

Next to the database ``jobs.db`` lives a folder ``jobs.db-jobq-wake/`` (made with
the database's folder permissions, ``0o700`` by default). Each process with a
worker pool on the file binds one Unix datagram socket there, named by its
process id and a random part, and a daemon thread waits on it. After each
committed change that makes a job runnable, the process that made it sends a
tiny datagram (the queue name; empty for "any queue") to every other socket in
the folder, without waiting: a full socket buffer means that listener is awake
already. The listing of the folder is cached and read again only when the
folder's modification time changes. A socket whose process has died refuses
datagrams; the first sender to meet one removes it.

What it reaches: processes of one host (one kernel), including containers that
share the folder through a volume (filesystem sockets, unlike Linux's abstract
ones, do not depend on the network namespace). Not other hosts, and not across
a virtual machine boundary (Docker Desktop's bind mounts from macOS or
Windows): there, and wherever the channel cannot be set up (no Unix datagram
sockets, as on Windows; a folder that cannot be made or written), worker pools
find other processes' jobs by polling, as without the channel.

Rule: standard library only; knows nothing of jobs beyond a queue name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable

__all__ = [
    "ENVIRONMENT_SWITCH",
    "SUFFIX",
    "WakeChannel",
    "channel_for",
    "enabled_by_environment",
    "release",
]

logger = logging.getLogger("jobq.storage")

SUFFIX = "-jobq-wake"
"""Appended to the database file's path to name the channel's folder."""

ENVIRONMENT_SWITCH = "JOBQ_SQLITE_WAKEUP"
"""Environment variable: ``0``, ``off``, ``false`` or ``no`` turns the channel off."""

_MAX_QUEUE_BYTES = 512  # a longer queue name is sent as "any queue"
_RECENT_NS = 100_000_000  # a folder changed this recently may change again within one mtime tick
_MAX_SUN_PATH = 100  # bytes; the system's limit is 104 (macOS) to 108 (Linux)
_PROC_FD = "/proc/self/fd"
_OUTQ: int | None = None
if sys.platform.startswith("linux"):
    import fcntl
    import termios

    _OUTQ = termios.TIOCOUTQ  # the same request as SIOCOUTQ
_DIRECTORY_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)

Callback = Callable[[str | None], None]


def enabled_by_environment() -> bool:
    """False if ``JOBQ_SQLITE_WAKEUP`` is ``0``, ``off``, ``false`` or ``no``."""
    value = os.environ.get(ENVIRONMENT_SWITCH, "").strip().lower()
    return value not in {"0", "off", "false", "no"}


class WakeChannel:
    """The channel of one database file in this process (one per file: see
    :func:`channel_for`). :meth:`notify` is called after commits; :meth:`subscribe`
    by worker pools. ``problem`` is None when this process can listen, else why not.
    """

    def __init__(self, folder: str, folder_mode: int, socket_mode: int) -> None:
        self.folder = folder
        self._socket_mode = socket_mode
        self._lock = threading.Lock()
        self._callbacks: list[Callback] = []
        self._listener: socket.socket | None = None
        self._own: str | None = None  # name of this process's socket in the folder
        self._targets: tuple[tuple[str, socket.socket], ...] = ()
        self._seen_mtime: int | None = None
        self._sending = False
        self._send_lock = threading.Lock()
        self._last_sent: dict[str, bytes] = {}  # by target: what was sent there last
        self._folder_fd = -1
        self._via_fd = False
        self.users = 0  # storages of this process using it (see channel_for, release)
        self._folder_mode = folder_mode
        self.problem = self._set_up(folder_mode)

    # -- setting up ---------------------------------------------------------------------

    def _set_up(self, folder_mode: int) -> str | None:
        if not hasattr(socket, "AF_UNIX"):
            return "this system has no Unix datagram sockets"
        try:
            os.mkdir(self.folder, folder_mode)
            os.chmod(self.folder, folder_mode)  # exactly: the umask must not narrow a group's
        except FileExistsError:
            pass
        except OSError as exc:
            return f"cannot make the folder {self.folder!r}: {exc.strerror or exc}"
        if not os.path.isdir(self.folder):
            return f"{self.folder!r} is not a folder"
        if os.stat(self.folder).st_mode & 0o002:
            return f"the folder {self.folder!r} is writable by anyone; make it 0o700"
        if not os.access(self.folder, os.W_OK | os.X_OK):
            return f"cannot write in the folder {self.folder!r}"
        try:
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).close()
            # Held open: fstat of it is several times cheaper than stat of the path.
            self._folder_fd = os.open(self.folder, _DIRECTORY_FLAGS)
        except OSError as exc:
            return f"cannot open a Unix datagram socket: {exc.strerror or exc}"
        if len(os.fsencode(self.folder)) + 40 > _MAX_SUN_PATH:
            if not os.path.isdir(_PROC_FD):
                os.close(self._folder_fd)
                self._folder_fd = -1
                return f"the path {self.folder!r} is too long for a Unix socket"
            # A socket's path is at most ~100 bytes: reach the folder through the
            # descriptor instead (Linux's /proc/self/fd/N/name).
            self._via_fd = True
        self._sending = True
        return None

    def _address(self, name: str) -> str:
        if self._via_fd:
            return f"{_PROC_FD}/{self._folder_fd}/{name}"
        return os.path.join(self.folder, name)

    # -- sending (after each commit that makes a job runnable) -----------------------------

    def notify(self, queue: str | None) -> None:
        """Tell every other listening process that ``queue`` (None: any queue) has a
        job ready. Costs a ``stat`` of the folder and one non-blocking send per
        listener (on a socket connected once, so the send resolves no path); never
        raises, never waits."""
        if not self._sending:
            return
        try:
            folder = os.fstat(self._folder_fd)
        except OSError:
            return
        mtime = folder.st_mtime_ns
        if folder.st_nlink == 0:  # the folder was removed; a new one may take its place
            self._reopen()
            return
        if mtime != self._seen_mtime:
            self._refresh(mtime)
        data = b""
        if queue is not None:
            data = queue.encode("utf-8", "replace")
            if len(data) > _MAX_QUEUE_BYTES:
                data = b""
        with self._send_lock:
            for name, target in self._targets:
                if self._last_sent.get(name) == data and _unread(target):
                    # Datagrams are read in order: the last one sent there, this very
                    # text, is still unread, and reading it wakes that pool after our
                    # commit. Sending more would only wake it again.
                    continue
                try:
                    target.send(data)
                except BlockingIOError:
                    pass  # its buffer is full: that process is awake and reading already
                except ConnectionRefusedError:
                    self._remove_stale(name)
                except OSError:
                    self._seen_mtime = None  # e.g. closed by a refresh in another thread
                else:
                    self._last_sent[name] = data

    def _reopen(self) -> None:
        with self._lock:
            with contextlib.suppress(OSError):
                os.mkdir(self.folder, self._folder_mode)
            try:
                fd = os.open(self.folder, _DIRECTORY_FLAGS)
            except OSError:
                return
            old, self._folder_fd = self._folder_fd, fd
            self._seen_mtime = None
            with contextlib.suppress(OSError):
                os.close(old)

    def _refresh(self, mtime: int) -> None:
        """Read the folder again: connect to new sockets, close those gone."""
        with self._lock:
            try:
                names = os.listdir(self.folder)
            except OSError:
                names = []
            old = dict(self._targets)
            own = self._own
            targets = []
            for name in names:
                if not name.endswith(".sock") or name == own:
                    continue
                target = old.pop(name, None) or self._connect(name)
                if target is not None:
                    targets.append((name, target))
            self._targets = tuple(targets)
            for target in old.values():
                target.close()
            # Folder times are kept at a coarse tick (a few ms): two changes within one
            # tick leave the same mtime, so a recent one is no proof the listing is whole.
            recent = abs(time.time_ns() - mtime) < _RECENT_NS
            self._seen_mtime = None if recent else mtime

    def _connect(self, name: str) -> socket.socket | None:
        target = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            target.setblocking(False)
            target.connect(self._address(name))
        except ConnectionRefusedError:
            target.close()
            self._remove_stale(name)
            return None
        except OSError:
            target.close()  # gone meanwhile, or another user's socket we may not write to
            return None
        return target

    def _remove_stale(self, name: str) -> None:
        """``name`` refused a datagram: its process is gone. Remove it (once)."""
        self._seen_mtime = None
        try:
            os.unlink(os.path.join(self.folder, name))
        except OSError:
            pass
        else:
            logger.debug("jobq: removed the wake-up socket %s of a process that ended", name)

    # -- listening (worker pools) ----------------------------------------------------------

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(queue_name)`` (None: any queue) when another process says
        a job is ready; returns the function that unsubscribes. The first
        subscriber binds this process's socket and starts its thread; the last
        to leave closes them. If the socket cannot be bound, says why in a warning
        and returns a function that does nothing: the pool finds jobs by polling."""
        with self._lock:
            if self._listener is None:
                try:
                    self._listen()
                except OSError as exc:
                    logger.warning(
                        "jobq: cannot listen on the wake-up channel in %s (%s); worker pools "
                        "in this process find jobs enqueued by other processes by polling",
                        self.folder,
                        exc.strerror or exc,
                    )
                    return _nothing
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)
                if not self._callbacks:
                    self._close_listener()
            if not self.listening:
                _forget_if_unused(self)

        return unsubscribe

    def _listen(self) -> None:
        """Bind this process's socket and start its thread. Lock held."""
        self._remove_dead()
        name = f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            listener.bind(self._address(name))
            os.chmod(self._address(name), self._socket_mode)
        except OSError:
            listener.close()
            raise
        self._listener, self._own = listener, name
        self._seen_mtime = None
        thread = threading.Thread(
            target=self._receive, args=(listener,), name="jobq-sqlite-wakeup", daemon=True
        )
        thread.start()

    def _remove_dead(self) -> None:
        """Remove the sockets of processes that ended without removing theirs (killed):
        connecting to one is refused. Lock held."""
        try:
            names = [n for n in os.listdir(self.folder) if n.endswith(".sock")]
        except OSError:
            return
        for name in names:
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                probe.connect(self._address(name))
            except ConnectionRefusedError:
                self._remove_stale(name)
            except OSError:
                pass
            finally:
                probe.close()

    def _close_listener(self) -> None:
        """Unbind this process's socket; its thread ends. Lock held."""
        listener, name = self._listener, self._own
        self._listener = self._own = None
        if listener is None or name is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.folder, name))
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the thread's recv

    def _receive(self, listener: socket.socket) -> None:
        try:
            while True:
                data = listener.recv(_MAX_QUEUE_BYTES + 1)
                if self._listener is not listener:
                    return
                queues = {data}
                try:  # take what else is waiting, to wake each pool once
                    while len(queues) < 64:
                        queues.add(listener.recv(_MAX_QUEUE_BYTES + 1, socket.MSG_DONTWAIT))
                except OSError:
                    pass
                with self._lock:
                    callbacks = list(self._callbacks)
                names = [None] if b"" in queues else [q.decode("utf-8", "replace") for q in queues]
                for callback in callbacks:
                    for queue_name in names:
                        _call(callback, queue_name)
        except OSError:
            return
        finally:
            listener.close()

    def after_fork_in_child(self) -> None:
        """A forked child owns neither the parent's socket nor its subscribers: forget
        them (closing the child's copy only; the file stays the parent's)."""
        self._lock = threading.Lock()
        self._callbacks = []
        listener, self._listener, self._own = self._listener, None, None
        self._seen_mtime = None
        if listener is not None:
            listener.close()

    def close(self) -> None:
        """Stop listening and sending; closes the descriptor of the folder."""
        with self._lock:
            self._callbacks.clear()
            self._close_listener()
            self._sending = False
            targets, self._targets = self._targets, ()
            for _, target in targets:
                target.close()
            if self._folder_fd >= 0:
                os.close(self._folder_fd)
                self._folder_fd = -1

    @property
    def listening(self) -> bool:
        """Whether this process has a socket bound (someone subscribed)."""
        return self._listener is not None


def _unread(target: socket.socket) -> bool:
    """True if a datagram sent on ``target`` is still unread (Linux: what the socket
    sent and its reader has not taken yet counts in its SIOCOUTQ); False where the
    system does not tell."""
    if _OUTQ is None:
        return False
    try:
        (queued,) = struct.unpack("i", fcntl.ioctl(target.fileno(), _OUTQ, b"\0\0\0\0"))
    except OSError:
        return False
    return bool(queued > 0)


def _nothing() -> None:
    """The unsubscribe function of a subscription that could not be made."""


def _call(callback: Callback, queue_name: str | None) -> None:
    try:
        callback(queue_name)
    except Exception:  # a subscriber's bug must not end the thread that wakes the others
        logger.exception("jobq: a wake-up subscriber failed")


_channels: dict[str, WakeChannel] = {}
_channels_lock = threading.Lock()


def channel_for(database: str, folder_mode: int, socket_mode: int) -> WakeChannel:
    """This process's channel for the database file at ``database`` (an absolute
    path), made on first use. A problem setting it up is logged once, as a
    warning, and leaves :attr:`WakeChannel.problem` set."""
    folder = database + SUFFIX
    with _channels_lock:
        channel = _channels.get(folder)
        if channel is None:
            channel = _channels[folder] = WakeChannel(folder, folder_mode, socket_mode)
            channel.users += 1
            if channel.problem is not None:
                logger.warning(
                    "jobq: no wake-up channel for %s (%s); worker pools in this process find "
                    "jobs enqueued by other processes by polling (poll_interval)",
                    database,
                    channel.problem,
                )
        else:
            channel.users += 1
    return channel


def release(channel: WakeChannel) -> None:
    """A storage that had :func:`channel_for` closed: once no storage of this process
    uses the channel and no pool listens on it, close it (its descriptor goes)."""
    with _channels_lock:
        channel.users -= 1
    _forget_if_unused(channel)


def _forget_if_unused(channel: WakeChannel) -> None:
    with _channels_lock:
        if channel.users > 0 or channel.listening:
            return
        if _channels.get(channel.folder) is channel:
            del _channels[channel.folder]
    channel.close()


def _after_fork_in_child() -> None:
    global _channels_lock
    _channels_lock = threading.Lock()
    for channel in _channels.values():
        channel.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
