"""Where an image job may read and write: every path kept inside its folder,
symlinks resolved and checked.

Rule: path arithmetic and lookups only (``realpath``, ``lexists``); this module
reads and writes no file and imports no Pillow.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ...errors import Fail
from .settings import ImageSettings
from .specs import Output

__all__ = ["inside", "real", "resolve_output", "resolve_source"]


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` is ``root`` or below it (paths compared as given)."""
    return path == root or root in path.parents


def real(path: str | os.PathLike[str]) -> Path:
    """``path`` with every symlink resolved."""
    return Path(os.path.realpath(path))


def resolve_source(source: str, settings: ImageSettings) -> Path:
    """The real path of ``source``, which must be inside one of the input folders."""
    if not isinstance(source, str) or not source or "\0" in source:
        raise Fail(f"source must be a non-empty file path, got {source!r}")
    roots = [real(folder) for folder in settings.input_dirs]
    refused = Fail(
        f"source {source!r} is outside the input folders; images are only read "
        "from inside input_dirs (symlinks are followed and checked too)"
    )
    if os.path.isabs(source):
        found = real(source)
        if not _below_any(found, roots):
            raise refused
        return found
    candidates = [real(os.path.join(folder, source)) for folder in settings.input_dirs]
    # Every candidate is checked, not only the first found: a path that escapes
    # through one folder is refused whichever folder holds the file.
    if not all(_below_any(candidate, roots) for candidate in candidates):
        raise refused
    for candidate in candidates:
        if os.path.lexists(candidate):
            return candidate
    raise Fail(f"source {source!r} was not found in the input folders")


def _below_any(path: Path, roots: Iterable[Path]) -> bool:
    return any(inside(path, root) and path != root for root in roots)


def resolve_output(output: Output, settings: ImageSettings) -> Path:
    """Where ``output`` is written: a path inside the output folder, its parent's
    symlinks resolved; the final name may be a symlink only to a place inside."""
    root = real(settings.output_dir)
    candidate = Path(output.path)
    if not candidate.is_absolute():
        candidate = Path(settings.output_dir) / candidate
    target = real(candidate.parent) / candidate.name
    if not (inside(target, root) and target != root and inside(real(target), root)):
        raise Fail(
            f"{output.where}.path {output.path!r} is outside the output folder; "
            "outputs are only written inside output_dir (symlinks are checked too)"
        )
    return target
