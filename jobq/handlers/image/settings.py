"""The image handler's settings: where images may be read and written, the formats
allowed, and the limits that protect the workers.

Rule: plain checked values; this module imports neither Pillow nor anything
that reads, decodes or writes an image.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from ...validate import is_int
from .._install import settings_from_mapping

__all__ = ["INPUT_FORMATS", "OUTPUT_FORMATS", "ImageSettings", "formats", "whole"]

INPUT_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
"""Formats that may be read, as Pillow names them."""

OUTPUT_FORMATS = ("JPEG", "PNG", "WEBP")
"""Formats that may be written, as Pillow names them."""

FORMAT_NAMES = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF"}
"""Format names a user may write (any case), to Pillow's names."""


@dataclass(frozen=True, kw_only=True)
class ImageSettings:
    """Where images may be read and written, and the limits that protect the workers.

    :param input_dirs: folders sources may be read from (at least one); a
        source outside all of them, also through a symlink, is refused.
    :param output_dir: folder outputs are written under (created if missing);
        an output outside it is refused.
    :param max_pixels: most pixels (width x height) a source, or an output box,
        may have; checked from the file's header before any pixel is decoded.
        Default 50,000,000, at least 1, and at most ``PIL.Image.MAX_IMAGE_PIXELS``
        (checked by :func:`install`).
    :param max_input_bytes: largest source file, in bytes. Default 50 MiB.
    :param max_outputs: most outputs one job may ask for. Default 10.
    :param max_output_pixels: most pixels (width x height) all the outputs of one
        job may have together, counted from the source's size and the specs before
        any output is made; a job over it fails at once. Default 100,000,000
        (twice the default ``max_pixels``), at least 1.
    :param quality: JPEG and WebP quality (1 to 100) of outputs that give none.
        Default 85.
    :param max_attempts: attempts of a job (at least 1). Default 2: bad input
        fails at once whatever this is; only write errors and unexpected errors
        are retried.
    :param input_formats: formats that may be read, a subset of
        :data:`INPUT_FORMATS` (the default); Pillow tries no other decoder.
    :param output_formats: formats that may be written, a subset of
        :data:`OUTPUT_FORMATS` (the default).

    Folders may be given as ``str`` or ``os.PathLike`` (and ``input_dirs`` as a
    list); they are kept as strings. Relative folders are taken from the
    worker's current directory: give absolute ones.
    """

    input_dirs: tuple[str, ...]
    output_dir: str
    max_pixels: int = 50_000_000
    max_input_bytes: int = 50 * 1024 * 1024
    max_outputs: int = 10
    max_output_pixels: int = 100_000_000
    quality: int = 85
    max_attempts: int = 2
    input_formats: tuple[str, ...] = INPUT_FORMATS
    output_formats: tuple[str, ...] = OUTPUT_FORMATS

    def __post_init__(self) -> None:
        dirs: Any = self.input_dirs
        if isinstance(dirs, (str, os.PathLike)):
            dirs = (dirs,)
        if not isinstance(dirs, Iterable):
            raise TypeError(f"input_dirs must be a list of folders, got {dirs!r}")
        dirs = tuple(_folder("input_dirs", folder) for folder in dirs)
        if not dirs:
            raise ValueError("input_dirs must name at least one folder images may be read from")
        object.__setattr__(self, "input_dirs", dirs)
        object.__setattr__(self, "output_dir", _folder("output_dir", self.output_dir))
        whole("max_pixels", self.max_pixels, 1)
        whole("max_input_bytes", self.max_input_bytes, 1)
        whole("max_outputs", self.max_outputs, 1)
        whole("max_output_pixels", self.max_output_pixels, 1)
        whole("quality", self.quality, 1, 100)
        whole("max_attempts", self.max_attempts, 1)
        for name, supported in (
            ("input_formats", INPUT_FORMATS),
            ("output_formats", OUTPUT_FORMATS),
        ):
            object.__setattr__(self, name, formats(name, getattr(self, name), supported))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> ImageSettings:
        """Settings from a plain mapping such as ``app.config["JOBQ_IMAGE"]``; the keys
        are the field names. Raises ConfigurationError naming an unknown key or a bad value."""
        return settings_from_mapping(cls, mapping, "JOBQ_IMAGE")


def _folder(name: str, value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise ValueError(f"{name} must be a folder path, got {value!r}")
    return str(os.fspath(value))


def whole(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    """``value`` if it is an int (not a bool) from ``minimum`` to ``maximum`` (both
    included; no upper bound when None); ValueError naming ``name`` otherwise."""
    if not is_int(value) or value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise ValueError(f"{name} must be a whole number {bounds}, got {value!r}")
    return cast(int, value)


def formats(name: str, value: Any, supported: tuple[str, ...]) -> tuple[str, ...]:
    """The formats ``value`` names (Pillow's names, each once), all in ``supported``;
    TypeError when it is not a list, ValueError naming ``name`` for a bad one."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list of format names, got {value!r}")
    found = []
    for item in value:
        fmt = FORMAT_NAMES.get(item.lower()) if isinstance(item, str) else None
        if fmt not in supported:
            raise ValueError(f"{name} may only hold {', '.join(supported)}; got {item!r}")
        found.append(fmt)
    if not found:
        raise ValueError(f"{name} must name at least one format")
    return tuple(dict.fromkeys(found))
