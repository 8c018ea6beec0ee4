"""Reading a source and writing outputs: bounded reads, atomic writes, and which
file-system errors are worth another attempt.

Rule: this module moves bytes between files and Pillow's encoder; it decides
nothing about what an output looks like (that is ``rendering``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, cast

from PIL import Image

from ...errors import Fail, TransientError
from .paths import inside, real
from .settings import ImageSettings
from .specs import Output

__all__ = ["fsync_folder", "os_error", "read_source", "write"]

# Errors of writing that another attempt will meet again: the path itself is wrong.
_PERMANENT_ERRNOS = {errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST}


def read_source(path: Path, source: str, settings: ImageSettings) -> bytes:
    """The bytes of the source file, at most ``max_input_bytes``."""
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_CLOEXEC", 0)
        | getattr(os, "O_BINARY", 0)
    )
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise Fail(f"source {source!r} was not found in the input folders") from None
    except OSError as exc:
        raise os_error(f"cannot open source {source!r}", exc) from exc
    chunks: list[bytes] = []
    try:
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise Fail(f"source {source!r} is not a regular file")
            if info.st_size > settings.max_input_bytes:
                raise Fail(
                    f"source {source!r} has {info.st_size:,} bytes, more than "
                    f"max_input_bytes ({settings.max_input_bytes:,})"
                )
            remaining = settings.max_input_bytes + 1  # one more, to see a file that grew
            while chunk := os.read(fd, min(remaining, 1 << 20)):
                chunks.append(chunk)
                remaining -= len(chunk)
                if remaining <= 0:
                    break
        finally:
            os.close(fd)
    except OSError as exc:
        raise os_error(f"cannot read source {source!r}", exc) from exc
    data = b"".join(chunks)
    if len(data) > settings.max_input_bytes:  # it grew after fstat
        raise Fail(
            f"source {source!r} has more than max_input_bytes ({settings.max_input_bytes:,}) bytes"
        )
    return data


def os_error(what: str, exc: OSError) -> Fail | TransientError:
    """A file-system error as Fail (the path is wrong: another attempt meets it again)
    or TransientError (a full disk, an I/O error, missing permission: may be fixed)."""
    message = f"{what}: {exc.strerror or exc}"
    if exc.errno in _PERMANENT_ERRNOS:
        return Fail(message)
    return TransientError(message)


class _Sink:
    """A write-only file for Pillow that remembers a failed write, to tell a full disk
    (worth another attempt) from an image Pillow cannot encode (not worth one)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self._file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        try:
            self._file.flush()
        except OSError as exc:
            self.error = exc
            raise


def write(
    image: Image.Image, output: Output, target: Path, root: Path, options: Mapping[str, Any]
) -> int:
    """Save ``image`` at ``target`` atomically; return its size in bytes.

    A temporary file in the same folder is written, fsynced and renamed over
    the target, so the target holds the whole old file or the whole new one;
    on any error the temporary file is removed.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(
            f"cannot create the folder of {output.where}.path {output.path!r}", exc
        ) from exc
    if not inside(real(target.parent), root):  # swapped for a symlink meanwhile
        raise Fail(f"{output.where}.path {output.path!r} is outside the output folder")
    try:
        fd, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        )
    except OSError as exc:
        raise os_error(f"cannot write {output.where}.path {output.path!r}", exc) from exc
    try:
        with os.fdopen(fd, "wb") as file:
            sink = _Sink(file)
            # Pillow's savers fall back on the image's own metadata (a JPEG comment...):
            # hide it, so that only what ``options`` gives is written.
            info, image.info = image.info, {}
            try:
                image.save(cast(IO[bytes], sink), format=output.format, **options)
            except Exception as exc:
                if sink.error is not None:
                    raise sink.error from None
                raise Fail(
                    f"{output.where}: cannot encode {output.path!r} as {output.format}: {exc}"
                ) from exc
            finally:
                image.info = info
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; outputs are usually served
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            raise os_error(f"cannot write {output.where}.path {output.path!r}", exc) from exc
        raise
    fsync_folder(target.parent)
    return target.stat().st_size


def fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable on POSIX; not possible (nor needed) everywhere.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
