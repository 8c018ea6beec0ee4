"""Output specs: what a job asks to be made of its source, checked before any work.

Rule: pure data checks; this module imports neither Pillow nor anything that
touches files (an output's path is checked against the output folder later,
in ``paths``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Literal

from .settings import FORMAT_NAMES, OUTPUT_FORMATS, ImageSettings, whole

__all__ = ["MAX_SIDE", "Output", "parse_outputs", "sizes", "validate_outputs"]

MAX_SIDE = 65_535
"""Largest width or height, in pixels, an output spec may ask for."""

# An output's file name extension must be one of its format's: a web server picks the
# Content-Type (or a handler, such as PHP) from it, whatever the bytes are.
_EXTENSIONS = {"JPEG": (".jpg", ".jpeg"), "PNG": (".png",), "WEBP": (".webp",)}
_OUTPUT_KEYS = (
    "path",
    "format",
    "resize",
    "crop",
    "thumbnail",
    "quality",
    "optimize",
    "strip_metadata",
    "auto_orient",
)
_RESIZE_KEYS = ("width", "height", "mode")
_CROP_KEYS = ("left", "top", "width", "height")


@dataclass(frozen=True)
class Output:
    """One output spec, checked."""

    where: str  # "outputs[2]", for messages
    path: str
    format: str
    crop: tuple[int, int, int, int] | None  # left, top, width, height
    resize: tuple[int, int, str] | None  # width, height, mode
    thumbnail: tuple[int, int] | None
    quality: int | None
    optimize: bool
    strip_metadata: bool
    auto_orient: bool

    def box_pixels(self) -> int:
        """Pixels of the largest image this output may make (0: as large as the source)."""
        if self.resize is not None:
            return self.resize[0] * self.resize[1]
        if self.thumbnail is not None:
            return self.thumbnail[0] * self.thumbnail[1]
        return 0


def validate_outputs(outputs: Any, settings: ImageSettings | None = None) -> None:
    """Check a list of output specs as :func:`process_image` will, without a job.

    Call it where the specs are built from user input, before enqueueing.
    Raises ValueError naming the bad field (``outputs[1].resize.mode ...``,
    ``outputs[0].path 'page.html' must end in .jpg or .jpeg ...``). With
    ``settings``, also checks their limits and allowed formats. What needs the
    source (crops, ``max_output_pixels``) is checked when the job runs.
    """
    parse_outputs(outputs, settings)


def parse_outputs(outputs: Any, settings: ImageSettings | None) -> list[Output]:
    """The checked specs of ``outputs``, within the limits of ``settings`` if given;
    ValueError naming the first bad field."""
    if not isinstance(outputs, (list, tuple)) or not outputs:
        raise ValueError(f"outputs must be a non-empty list of output specs, got {outputs!r}")
    parsed = [_parse_output(spec, f"outputs[{index}]") for index, spec in enumerate(outputs)]
    if settings is not None:
        _check_limits(parsed, settings)
    return parsed


def sizes(
    stem: str,
    boxes: Iterable[int | tuple[int, int]],
    *,
    format: str = "webp",
    mode: Literal["thumbnail", "fit", "fill"] = "thumbnail",
    quality: int | None = None,
) -> list[dict[str, Any]]:
    """Output specs for one image at several sizes, e.g. for ``process_image``::

        sizes("thumbs/42", [200, (800, 600)])
        # [{"path": "thumbs/42-200x200.webp", "thumbnail": [200, 200], "format": "webp"},
        #  {"path": "thumbs/42-800x600.webp", "thumbnail": [800, 600], "format": "webp"}]

    An int box is a square. ``mode``: ``"thumbnail"`` (default: fit inside the
    box, never enlarged), ``"fit"`` (fit inside, enlarged if smaller) or
    ``"fill"`` (cover the box, centre-cropped to exactly its size). Raises
    ValueError for a bad box, format or quality.
    """
    specs: list[dict[str, Any]] = []
    for box in boxes:
        width, height = (box, box) if isinstance(box, int) else box
        spec: dict[str, Any] = {
            "path": f"{stem}-{width}x{height}.{format.lower()}",
            "format": format,
        }
        if mode == "thumbnail":
            spec["thumbnail"] = [width, height]
        else:
            spec["resize"] = {"width": width, "height": height, "mode": mode}
        if quality is not None:
            spec["quality"] = quality
        specs.append(spec)
    parse_outputs(specs, None)
    return specs


def _check_limits(parsed: list[Output], settings: ImageSettings) -> None:
    if len(parsed) > settings.max_outputs:
        raise ValueError(
            f"{len(parsed)} outputs asked, at most {settings.max_outputs} (max_outputs) may be"
        )
    for output in parsed:
        if output.format not in settings.output_formats:
            raise ValueError(
                f"{output.where}.format {output.format} is not allowed here; "
                f"allowed: {', '.join(settings.output_formats)}"
            )
        if output.box_pixels() > settings.max_pixels:
            raise ValueError(
                f"{output.where} asks for {output.box_pixels():,} pixels, "
                f"more than max_pixels ({settings.max_pixels:,})"
            )


def _parse_output(spec: Any, where: str) -> Output:
    spec = _object(where, spec, _OUTPUT_KEYS)
    path = _path(spec.get("path"), where)
    fmt = _output_format(spec.get("format"), path, where)
    crop = _crop(spec.get("crop"), where)
    resize = _resize(spec.get("resize"), where)
    thumbnail = _thumbnail(spec.get("thumbnail"), where)
    if resize and thumbnail:
        raise ValueError(f"{where} gives both resize and thumbnail; give one of them")
    quality = spec.get("quality")
    if quality is not None:
        quality = whole(f"{where}.quality", quality, 1, 100)
    return Output(
        where=where,
        path=path,
        format=fmt,
        crop=crop,
        resize=resize,
        thumbnail=thumbnail,
        quality=quality,
        optimize=_flag(spec, where, "optimize", False),
        strip_metadata=_flag(spec, where, "strip_metadata", True),
        auto_orient=_flag(spec, where, "auto_orient", True),
    )


def _path(path: Any, where: str) -> str:
    if not isinstance(path, str) or not path or "\0" in path:
        raise ValueError(f"{where}.path must be a non-empty file path, got {path!r}")
    if path.endswith(("/", os.sep)) or PurePath(path).name in ("", ".", ".."):
        raise ValueError(f"{where}.path must name a file, got {path!r}")
    return path


def _crop(value: Any, where: str) -> tuple[int, int, int, int] | None:
    if value is None:
        return None
    box = _object(f"{where}.crop", value, _CROP_KEYS)
    return (
        whole(f"{where}.crop.left", box.get("left"), 0, MAX_SIDE),
        whole(f"{where}.crop.top", box.get("top"), 0, MAX_SIDE),
        whole(f"{where}.crop.width", box.get("width"), 1, MAX_SIDE),
        whole(f"{where}.crop.height", box.get("height"), 1, MAX_SIDE),
    )


def _resize(value: Any, where: str) -> tuple[int, int, str] | None:
    if value is None:
        return None
    box = _object(f"{where}.resize", value, _RESIZE_KEYS)
    mode = box.get("mode", "fit")
    if mode not in ("fit", "fill"):
        raise ValueError(f"{where}.resize.mode must be 'fit' or 'fill', got {mode!r}")
    return (
        whole(f"{where}.resize.width", box.get("width"), 1, MAX_SIDE),
        whole(f"{where}.resize.height", box.get("height"), 1, MAX_SIDE),
        mode,
    )


def _thumbnail(value: Any, where: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{where}.thumbnail must be [width, height], got {value!r}")
    return (
        whole(f"{where}.thumbnail[0]", value[0], 1, MAX_SIDE),
        whole(f"{where}.thumbnail[1]", value[1], 1, MAX_SIDE),
    )


def _object(where: str, value: Any, keys: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be an object with keys {', '.join(keys)}, got {value!r}")
    unknown = sorted(map(str, set(value) - set(keys)))
    if unknown:
        raise ValueError(
            f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"known keys: {', '.join(keys)}"
        )
    return value


def _flag(spec: Mapping[str, Any], where: str, key: str, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{where}.{key} must be true or false, got {value!r}")
    return value


def _output_format(given: Any, path: str, where: str) -> str:
    """The output's format, from ``given`` or else from the path's extension, which
    must be one of that format's (``_EXTENSIONS``) either way."""
    suffix = PurePath(path).suffix.lower()
    if given is None:
        for fmt, suffixes in _EXTENSIONS.items():
            if suffix in suffixes:
                return fmt
        raise ValueError(
            f"{where}.path {path!r} must end in .jpg, .jpeg, .png or .webp, "
            "the extension of the format it is written in"
        )
    fmt = FORMAT_NAMES.get(given.lower(), "") if isinstance(given, str) else ""
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"{where}.format must be 'jpeg', 'png' or 'webp', got {given!r}")
    if suffix not in _EXTENSIONS[fmt]:
        raise ValueError(
            f"{where}.path {path!r} must end in {' or '.join(_EXTENSIONS[fmt])} "
            f"to be written as {where}.format {given!r}"
        )
    return fmt
