"""Image processing as a job, with Pillow: resize, crop, thumbnail, convert, strip metadata.

Needs the ``images`` extra (``pip install 'jobq[images]'``); the jobq core never
imports this module. ::

    from jobq.handlers import image

    process_image = image.install(queue, image.ImageSettings(
        input_dirs=("/srv/uploads",), output_dir="/srv/media"))
    process_image.enqueue("42.jpg", image.sizes("thumbs/42", [200, 800]))

One job reads one source image from inside ``input_dirs``, decodes it once and
writes every output it describes under ``output_dir``, each atomically. Bad
input (missing, not an image, truncated, too many pixels or bytes, a path
outside the allowed folders, an invalid output spec) fails the job at once with
:class:`~jobq.Fail`; a failed write (disk full) raises
:class:`~jobq.TransientError`, which is retried up to ``max_attempts``. The
output spec is described in :func:`process_image` and ``docs/handlers/image.md``.

:func:`open_image` is the one way this module opens an untrusted image; use it
wherever your own code opens uploads, so only the allowed decoders ever run.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import struct
import tempfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import IO, TYPE_CHECKING, Any, Literal, cast

try:
    from PIL import Image, ImageOps, UnidentifiedImageError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "jobq.handlers.image needs Pillow; install it with: pip install 'jobq[images]'"
    ) from exc

from ..context import current_job
from ..errors import ConfigurationError, Fail, JobqError, TransientError
from . import installed, settings_from_mapping

if TYPE_CHECKING:
    from ..queue import DurableQueue
    from ..tasks import Task

EXTENSION_KEY = "jobq.image"
"""Key of the installed :class:`ImageSettings` in ``queue.extensions``."""

TASK_NAME = "jobq.image.process"
"""Name :func:`install` registers :func:`process_image` under."""

INPUT_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
"""Formats that may be read, as Pillow names them."""

OUTPUT_FORMATS = ("JPEG", "PNG", "WEBP")
"""Formats that may be written, as Pillow names them."""

MAX_SIDE = 65_535
"""Largest width or height, in pixels, an output spec may ask for."""

_FORMAT_NAMES = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF"}
# An output's file name extension must be one of its format's: a web server picks the
# Content-Type (or a handler, such as PHP) from it, whatever the bytes are.
_EXTENSIONS = {"JPEG": (".jpg", ".jpeg"), "PNG": (".png",), "WEBP": (".webp",)}
_OUTPUT_KEYS = ("path", "format", "resize", "crop", "thumbnail", "quality", "optimize",
                "strip_metadata", "auto_orient")
_RESIZE_KEYS = ("width", "height", "mode")
_CROP_KEYS = ("left", "top", "width", "height")
_ORIENTATION = 0x0112  # EXIF tag
# Errors of writing that another attempt will meet again: the path itself is wrong.
_PERMANENT_ERRNOS = {errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP, errno.EEXIST}
# What Pillow raises for a file it cannot decode.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error,
                  zlib.error, MemoryError)


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
        _check_int("max_pixels", self.max_pixels, 1)
        _check_int("max_input_bytes", self.max_input_bytes, 1)
        _check_int("max_outputs", self.max_outputs, 1)
        _check_int("max_output_pixels", self.max_output_pixels, 1)
        _check_int("quality", self.quality, 1, 100)
        _check_int("max_attempts", self.max_attempts, 1)
        for name, supported in (("input_formats", INPUT_FORMATS),
                                ("output_formats", OUTPUT_FORMATS)):
            object.__setattr__(self, name, _formats(name, getattr(self, name), supported))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> ImageSettings:
        """Settings from a plain mapping such as ``app.config["JOBQ_IMAGE"]``; the keys
        are the field names. Raises ConfigurationError naming an unknown key or a bad value."""
        return settings_from_mapping(cls, mapping, "JOBQ_IMAGE")


def _folder(name: str, value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise ValueError(f"{name} must be a folder path, got {value!r}")
    return str(os.fspath(value))


def _check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    if (isinstance(value, bool) or not isinstance(value, int) or value < minimum
            or (maximum is not None and value > maximum)):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise ValueError(f"{name} must be a whole number {bounds}, got {value!r}")


def _formats(name: str, value: Any, supported: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list of format names, got {value!r}")
    found = []
    for item in value:
        fmt = _FORMAT_NAMES.get(item.lower()) if isinstance(item, str) else None
        if fmt not in supported:
            raise ValueError(
                f"{name} may only hold {', '.join(supported)}; got {item!r}")
        found.append(fmt)
    if not found:
        raise ValueError(f"{name} must name at least one format")
    return tuple(dict.fromkeys(found))


# -- output specs -------------------------------------------------------------------


@dataclass(frozen=True)
class _Output:
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


def _whole(where: str, value: Any, minimum: int, maximum: int) -> int:
    if (isinstance(value, bool) or not isinstance(value, int)
            or not minimum <= value <= maximum):
        raise ValueError(
            f"{where} must be a whole number from {minimum} to {maximum}, got {value!r}")
    return value


def _object(where: str, value: Any, keys: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be an object with keys {', '.join(keys)}, got {value!r}")
    unknown = sorted(map(str, set(value) - set(keys)))
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; "
                         f"known keys: {', '.join(keys)}")
    return value


def _flag(spec: Mapping[str, Any], where: str, key: str, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{where}.{key} must be true or false, got {value!r}")
    return value


def _parse_output(spec: Any, where: str) -> _Output:
    spec = _object(where, spec, _OUTPUT_KEYS)
    path = spec.get("path")
    if not isinstance(path, str) or not path or "\0" in path:
        raise ValueError(f"{where}.path must be a non-empty file path, got {path!r}")
    if path.endswith(("/", os.sep)) or PurePath(path).name in ("", ".", ".."):
        raise ValueError(f"{where}.path must name a file, got {path!r}")
    fmt = _output_format(spec.get("format"), path, where)
    crop = resize = thumbnail = None
    if spec.get("crop") is not None:
        box = _object(f"{where}.crop", spec["crop"], _CROP_KEYS)
        crop = (_whole(f"{where}.crop.left", box.get("left"), 0, MAX_SIDE),
                _whole(f"{where}.crop.top", box.get("top"), 0, MAX_SIDE),
                _whole(f"{where}.crop.width", box.get("width"), 1, MAX_SIDE),
                _whole(f"{where}.crop.height", box.get("height"), 1, MAX_SIDE))
    if spec.get("resize") is not None:
        box = _object(f"{where}.resize", spec["resize"], _RESIZE_KEYS)
        mode = box.get("mode", "fit")
        if mode not in ("fit", "fill"):
            raise ValueError(f"{where}.resize.mode must be 'fit' or 'fill', got {mode!r}")
        resize = (_whole(f"{where}.resize.width", box.get("width"), 1, MAX_SIDE),
                  _whole(f"{where}.resize.height", box.get("height"), 1, MAX_SIDE), mode)
    if spec.get("thumbnail") is not None:
        value = spec["thumbnail"]
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ValueError(f"{where}.thumbnail must be [width, height], got {value!r}")
        thumbnail = (_whole(f"{where}.thumbnail[0]", value[0], 1, MAX_SIDE),
                     _whole(f"{where}.thumbnail[1]", value[1], 1, MAX_SIDE))
    if resize and thumbnail:
        raise ValueError(f"{where} gives both resize and thumbnail; give one of them")
    quality = spec.get("quality")
    if quality is not None:
        quality = _whole(f"{where}.quality", quality, 1, 100)
    return _Output(
        where=where, path=path, format=fmt, crop=crop, resize=resize, thumbnail=thumbnail,
        quality=quality, optimize=_flag(spec, where, "optimize", False),
        strip_metadata=_flag(spec, where, "strip_metadata", True),
        auto_orient=_flag(spec, where, "auto_orient", True),
    )


def _output_format(given: Any, path: str, where: str) -> str:
    """The output's format, from ``given`` or else from the path's extension, which
    must be one of that format's (``_EXTENSIONS``) either way."""
    suffix = PurePath(path).suffix.lower()
    if given is None:
        for fmt, suffixes in _EXTENSIONS.items():
            if suffix in suffixes:
                return fmt
        raise ValueError(f"{where}.path {path!r} must end in .jpg, .jpeg, .png or .webp, "
                         "the extension of the format it is written in")
    fmt = _FORMAT_NAMES.get(given.lower(), "") if isinstance(given, str) else ""
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"{where}.format must be 'jpeg', 'png' or 'webp', got {given!r}")
    if suffix not in _EXTENSIONS[fmt]:
        raise ValueError(f"{where}.path {path!r} must end in {' or '.join(_EXTENSIONS[fmt])} "
                         f"to be written as {where}.format {given!r}")
    return fmt


def validate_outputs(
    outputs: Any, settings: ImageSettings | None = None
) -> None:
    """Check a list of output specs as :func:`process_image` will, without a job.

    Call it where the specs are built from user input, before enqueueing.
    Raises ValueError naming the bad field (``outputs[1].resize.mode ...``,
    ``outputs[0].path 'page.html' must end in .jpg or .jpeg ...``). With
    ``settings``, also checks their limits and allowed formats. What needs the
    source (crops, ``max_output_pixels``) is checked when the job runs.
    """
    _parse_outputs(outputs, settings)


def _parse_outputs(outputs: Any, settings: ImageSettings | None) -> list[_Output]:
    if not isinstance(outputs, (list, tuple)) or not outputs:
        raise ValueError(f"outputs must be a non-empty list of output specs, got {outputs!r}")
    parsed = [_parse_output(spec, f"outputs[{index}]") for index, spec in enumerate(outputs)]
    if settings is not None:
        if len(parsed) > settings.max_outputs:
            raise ValueError(f"{len(parsed)} outputs asked, at most {settings.max_outputs} "
                             "(max_outputs) may be")
        for output in parsed:
            if output.format not in settings.output_formats:
                raise ValueError(f"{output.where}.format {output.format} is not allowed here; "
                                 f"allowed: {', '.join(settings.output_formats)}")
            if output.box_pixels() > settings.max_pixels:
                raise ValueError(f"{output.where} asks for {output.box_pixels():,} pixels, "
                                 f"more than max_pixels ({settings.max_pixels:,})")
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
        spec: dict[str, Any] = {"path": f"{stem}-{width}x{height}.{format.lower()}",
                                "format": format}
        if mode == "thumbnail":
            spec["thumbnail"] = [width, height]
        else:
            spec["resize"] = {"width": width, "height": height, "mode": mode}
        if quality is not None:
            spec["quality"] = quality
        specs.append(spec)
    _parse_outputs(specs, None)
    return specs


# -- paths --------------------------------------------------------------------------


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _real(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(path))


def _resolve_source(source: str, settings: ImageSettings) -> Path:
    """The real path of ``source``, which must be inside one of the input folders."""
    if not isinstance(source, str) or not source or "\0" in source:
        raise Fail(f"source must be a non-empty file path, got {source!r}")
    roots = [_real(folder) for folder in settings.input_dirs]
    refused = Fail(f"source {source!r} is outside the input folders; images are only read "
                   "from inside input_dirs (symlinks are followed and checked too)")
    if os.path.isabs(source):
        real = _real(source)
        if not any(_inside(real, root) and real != root for root in roots):
            raise refused
        return real
    found: Path | None = None
    for folder in settings.input_dirs:
        real = _real(os.path.join(folder, source))
        if not any(_inside(real, r) and real != r for r in roots):
            raise refused
        if found is None and os.path.lexists(real):
            found = real
    if found is None:
        raise Fail(f"source {source!r} was not found in the input folders")
    return found


def _resolve_output(output: _Output, settings: ImageSettings) -> Path:
    """Where ``output`` is written: a path inside the output folder, its parent's
    symlinks resolved; the final name may be a symlink only to a place inside."""
    root = _real(settings.output_dir)
    candidate = Path(output.path)
    if not candidate.is_absolute():
        candidate = Path(settings.output_dir) / candidate
    target = _real(candidate.parent) / candidate.name
    if not (_inside(target, root) and target != root and _inside(_real(target), root)):
        raise Fail(f"{output.where}.path {output.path!r} is outside the output folder; "
                   "outputs are only written inside output_dir (symlinks are checked too)")
    return target


# -- reading and decoding -------------------------------------------------------------


def _read_source(path: Path, source: str, settings: ImageSettings) -> bytes:
    """The bytes of the source file, at most ``max_input_bytes``."""
    flags = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
             | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise Fail(f"source {source!r} was not found in the input folders") from None
    except OSError as exc:
        raise _os_error(f"cannot open source {source!r}", exc) from exc
    chunks: list[bytes] = []
    try:
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise Fail(f"source {source!r} is not a regular file")
            if info.st_size > settings.max_input_bytes:
                raise Fail(f"source {source!r} has {info.st_size:,} bytes, more than "
                           f"max_input_bytes ({settings.max_input_bytes:,})")
            remaining = settings.max_input_bytes + 1  # one more, to see a file that grew
            while chunk := os.read(fd, min(remaining, 1 << 20)):
                chunks.append(chunk)
                remaining -= len(chunk)
                if remaining <= 0:
                    break
        finally:
            os.close(fd)
    except OSError as exc:
        raise _os_error(f"cannot read source {source!r}", exc) from exc
    data = b"".join(chunks)
    if len(data) > settings.max_input_bytes:  # it grew after fstat
        raise Fail(f"source {source!r} has more than max_input_bytes "
                   f"({settings.max_input_bytes:,}) bytes")
    return data


def _os_error(what: str, exc: OSError) -> Fail | TransientError:
    """A file-system error as Fail (the path is wrong: another attempt meets it again)
    or TransientError (a full disk, an I/O error, missing permission: may be fixed)."""
    message = f"{what}: {exc.strerror or exc}"
    if exc.errno in _PERMANENT_ERRNOS:
        return Fail(message)
    return TransientError(message)


class ImageRejected(JobqError, ValueError):
    """An untrusted image that :func:`open_image` refuses.

    The message is a phrase to put after a subject (``f"upload {name!r} {error}"``):
    ``"is not an image in an allowed format (JPEG, PNG, WEBP, GIF)"``.

    :ivar reason: ``"format"`` (not an image in an allowed format, not an image at
        all, or a header too corrupt to tell), ``"pixels"`` (more pixels than
        allowed: perhaps a decompression bomb) or ``"unreadable"`` (a header the
        decoder of an allowed format refuses).
    """

    def __init__(self, message: str, reason: Literal["format", "pixels", "unreadable"]) -> None:
        super().__init__(message)
        self.reason = reason


def open_image(
    data: bytes, *, max_pixels: int, formats: Iterable[str] = INPUT_FORMATS
) -> Image.Image:
    """Open an untrusted image from its bytes, trying only the decoders of
    ``formats``, and check its size from its header before any pixel is decoded.

    Open uploads with this rather than ``PIL.Image.open``, which tries every
    decoder Pillow has whatever the file is called: an EPS file named
    ``cat.jpg`` would run Ghostscript. :func:`process_image` opens its sources
    with it. ::

        with image.open_image(data, max_pixels=40_000_000) as picture:
            picture.load()

    :param data: the file's bytes.
    :param max_pixels: most pixels (width x height) the image may declare, at
        least 1. Pillow's process-wide ``PIL.Image.MAX_IMAGE_PIXELS`` applies too.
    :param formats: formats that may be read, a subset of :data:`INPUT_FORMATS`
        (the default); case does not matter and ``"jpg"`` means JPEG.
    :returns: the opened image, pixels not yet decoded: call ``.load()`` (after
        ``.draft()`` to decode a JPEG at a smaller scale), and close it (``with``).
        Decoding may still fail for a truncated or corrupt file.
    :raises ImageRejected: not an image in ``formats``, more pixels than
        ``max_pixels`` (or than Pillow's limit), or a header the decoder refuses.
    :raises ValueError, TypeError: a bad ``max_pixels`` or ``formats``.
    """
    _check_int("max_pixels", max_pixels, 1)
    allowed = _formats("formats", formats, INPUT_FORMATS)
    pillow_limit = Image.MAX_IMAGE_PIXELS
    limit = max_pixels if pillow_limit is None else min(max_pixels, pillow_limit)
    try:
        opened = Image.open(io.BytesIO(data), formats=allowed)
    except UnidentifiedImageError:
        # Also what Pillow says when an allowed format's header is too corrupt to read.
        raise ImageRejected(f"is not an image in an allowed format ({', '.join(allowed)}), "
                            "or its header is corrupt", "format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own limit, checked while opening (the warning, when made an error).
        raise ImageRejected(f"has too many pixels (at most {limit:,}); it may be a "
                            "decompression bomb", "pixels") from None
    except _DECODE_ERRORS as exc:
        raise ImageRejected(f"is not a readable image: {exc}", "unreadable") from None
    width, height = opened.size  # from the header: no pixel decoded yet
    if width * height > max_pixels:
        opened.close()
        raise ImageRejected(f"declares {width} x {height} = {width * height:,} pixels, more "
                            f"than max_pixels ({max_pixels:,}); it may be a decompression bomb",
                            "pixels")
    return opened


def _decode(data: bytes, source: str, settings: ImageSettings) -> tuple[Image.Image, str]:
    """The first frame of the image, loaded, as RGB, RGBA or L, its metadata in
    ``.info``, and its format; Fail if it is not a readable image within the limits."""
    try:
        opened = open_image(data, max_pixels=settings.max_pixels,
                            formats=settings.input_formats)
    except ImageRejected as exc:
        raise Fail(f"source {source!r} {exc}") from None
    try:
        try:
            opened.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise Fail(f"source {source!r} has too many pixels (at most max_pixels = "
                       f"{settings.max_pixels:,}); it may be a decompression bomb") from None
        except _DECODE_ERRORS as exc:
            raise Fail(f"source {source!r} is not a readable image (truncated or "
                       f"corrupt): {exc}") from None
        return _normalise(opened), str(opened.format)
    except BaseException:
        opened.close()
        raise


def _normalise(image: Image.Image) -> Image.Image:
    """The image in RGBA (transparency), L (grey) or RGB, the modes every output takes;
    a converted copy keeps the metadata, and the original is closed."""
    alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    mode = "RGBA" if alpha else "L" if image.mode in ("L", "1") else "RGB"
    if image.mode == mode:
        return image
    converted = image.convert(mode)
    converted.info = dict(image.info)
    converted.info.pop("transparency", None)
    image.close()
    return converted


def _upright(image: Image.Image) -> Image.Image | None:
    """The image turned as its EXIF orientation says, orientation removed from its
    EXIF and XMP; None when it is upright already."""
    if image.getexif().get(_ORIENTATION, 1) not in range(2, 9):
        return None
    return ImageOps.exif_transpose(image)


# -- rendering and writing ------------------------------------------------------------


def _check_crop(image: Image.Image, output: _Output) -> None:
    if output.crop is not None:
        left, top, width, height = output.crop
        if left + width > image.width or top + height > image.height:
            raise Fail(f"{output.where}.crop ({left}, {top}, {width} x {height}) reaches "
                       f"outside the image ({image.width} x {image.height})")


def _contained(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The largest size inside ``box`` with the aspect ratio of ``size``, as
    ``ImageOps.contain`` computes it (but never 0 pixels wide or high)."""
    width, height = size
    if width * box[1] > box[0] * height:  # wider than the box
        return box[0], max(1, round(height / width * box[0]))
    if width * box[1] < box[0] * height:
        return max(1, round(width / height * box[1])), box[1]
    return box


def _output_size(size: tuple[int, int], output: _Output) -> tuple[int, int]:
    """The width and height ``output`` gets from a source of ``size`` (as oriented)."""
    if output.crop is not None:
        size = output.crop[2], output.crop[3]
    if output.resize is not None:
        width, height, mode = output.resize
        return (width, height) if mode == "fill" else _contained(size, (width, height))
    if output.thumbnail is not None:
        box = output.thumbnail
        if size[0] > box[0] or size[1] > box[1]:
            return _contained(size, box)
    return size


def _check_output_pixels(bases: Sequence[Image.Image], plan: Sequence[_Output],
                         settings: ImageSettings) -> None:
    """Fail before any output is made when, together, they would have more pixels than
    ``max_output_pixels``: a tiny source may ask for many huge outputs."""
    sizes = [_output_size(base.size, output) for base, output in zip(bases, plan, strict=True)]
    total = sum(width * height for width, height in sizes)
    if total > settings.max_output_pixels:
        each = ", ".join(f"{width} x {height}" for width, height in sizes)
        raise Fail(f"the outputs would have {total:,} pixels in all ({each}), more than "
                   f"max_output_pixels ({settings.max_output_pixels:,}); ask for fewer "
                   "or smaller outputs")


def _render(image: Image.Image, output: _Output) -> Image.Image:
    """Crop, then resize or thumbnail; JPEG gets transparency flattened on white."""
    if output.crop is not None:
        left, top, width, height = output.crop
        image = image.crop((left, top, left + width, top + height))
    lanczos = Image.Resampling.LANCZOS
    size = _output_size(image.size, output)
    if output.resize is not None and output.resize[2] == "fill":
        image = ImageOps.fit(image, size, lanczos)
    elif size != image.size:
        image = image.resize(size, lanczos)
    if output.format == "JPEG" and image.mode == "RGBA":
        flat = Image.new("RGB", image.size, "white")
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    return image


def _save_options(output: _Output, settings: ImageSettings,
                  metadata: Mapping[Any, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if output.format in ("JPEG", "WEBP"):
        options["quality"] = output.quality if output.quality is not None else settings.quality
    if output.optimize:
        options.update({"method": 6} if output.format == "WEBP" else {"optimize": True})
    if metadata.get("icc_profile"):  # colour data, not personal data: kept
        options["icc_profile"] = metadata["icc_profile"]
    if not output.strip_metadata:
        if metadata.get("comment") and output.format == "JPEG":
            options["comment"] = metadata["comment"]
        if metadata.get("exif"):
            options["exif"] = metadata["exif"]
        if metadata.get("xmp") and output.format in ("JPEG", "WEBP"):
            options["xmp"] = metadata["xmp"]
    return options


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


def _write(image: Image.Image, output: _Output, target: Path, root: Path,
           options: Mapping[str, Any]) -> int:
    """Save ``image`` at ``target`` atomically; return its size in bytes.

    A temporary file in the same folder is written, fsynced and renamed over
    the target, so the target holds the whole old file or the whole new one;
    on any error the temporary file is removed.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_error(f"cannot create the folder of {output.where}.path {output.path!r}",
                        exc) from exc
    if not _inside(_real(target.parent), root):  # swapped for a symlink meanwhile
        raise Fail(f"{output.where}.path {output.path!r} is outside the output folder")
    try:
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                         suffix=".tmp")
    except OSError as exc:
        raise _os_error(f"cannot write {output.where}.path {output.path!r}", exc) from exc
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
                raise Fail(f"{output.where}: cannot encode {output.path!r} as "
                           f"{output.format}: {exc}") from exc
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
            raise _os_error(f"cannot write {output.where}.path {output.path!r}",
                            exc) from exc
        raise
    _fsync_folder(target.parent)
    return target.stat().st_size


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable on POSIX; not possible (nor needed) everywhere.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- the task -----------------------------------------------------------------------


def process_image(source: str, outputs: list[dict[str, Any]], /) -> dict[str, Any]:
    """Read ``source`` once and write every output it describes; return what was written.

    Run by a worker after :func:`install`; enqueue with
    ``task.enqueue(source, outputs)`` (positional arguments).

    :param source: a path inside one of ``input_dirs``, relative to one of them
        (the first that holds it) or absolute.
    :param outputs: one object per output file (see :func:`sizes`), with keys

        - ``path`` (required): where to write it, relative to ``output_dir``,
          ending in its format's extension (.jpg or .jpeg, .png, .webp);
        - ``format``: ``"jpeg"``, ``"png"`` or ``"webp"``; default from the extension;
        - ``crop``: ``{"left", "top", "width", "height"}`` in pixels of the
          (oriented) source, applied first;
        - ``resize``: ``{"width", "height", "mode"}``, mode ``"fit"`` (default:
          inside the box, aspect kept, enlarged if smaller) or ``"fill"`` (exactly
          the box, aspect kept by centre-cropping);
        - ``thumbnail``: ``[width, height]``: inside the box, never enlarged
          (not with ``resize``);
        - ``quality``: 1 to 100, JPEG and WebP (default the settings' ``quality``);
        - ``optimize``: smaller files for more CPU (default false);
        - ``strip_metadata``: drop EXIF (GPS, camera...), XMP, comments and
          text chunks (default true; the ICC colour profile is always kept);
          false keeps EXIF, plus XMP and a comment where the format holds them;
        - ``auto_orient``: turn the image as its EXIF orientation says (default true).

    Returns ``{"source": {"format", "width", "height"}, "outputs": [{"path",
    "width", "height", "format", "bytes"}, ...]}``: the source's size as
    displayed (after its EXIF orientation), output paths relative to
    ``output_dir``. If the job is cancelled meanwhile, the outputs not yet
    written are skipped. The outputs together may have at most
    ``max_output_pixels`` pixels, checked before any is made. Raises
    :class:`~jobq.Fail` for bad input and
    :class:`~jobq.TransientError` when writing fails for a reason that may
    pass; RuntimeError when called outside a job.
    """
    try:
        settings = installed(EXTENSION_KEY, ImageSettings,
                             "jobq.handlers.image.install(queue, settings)")
    except ConfigurationError as exc:
        raise Fail(str(exc)) from None
    try:
        plan = _parse_outputs(outputs, settings)
    except ValueError as exc:
        raise Fail(f"invalid image job: {exc}") from None
    # Every path is checked before any work, so a refused one leaves nothing written.
    path = _resolve_source(source, settings)
    root = _real(settings.output_dir)
    targets = [_resolve_output(output, settings) for output in plan]
    for index, target in enumerate(targets):
        if target in targets[:index]:
            raise Fail(f"outputs[{targets.index(target)}].path and outputs[{index}].path "
                       "name the same file")
    data = _read_source(path, source, settings)
    image, source_format = _decode(data, source, settings)
    del data
    upright: Image.Image | None = None
    results: list[dict[str, Any]] = []
    try:
        if any(output.auto_orient for output in plan):
            upright = _upright(image)
        bases = [upright if output.auto_orient and upright is not None else image
                 for output in plan]
        for output, base in zip(plan, bases, strict=True):
            _check_crop(base, output)
        _check_output_pixels(bases, plan, settings)
        job = current_job()
        for output, target, base in zip(plan, targets, bases, strict=True):
            if job.cancel_requested:
                break
            rendered = _render(base, output)
            options = _save_options(output, settings, base.info)
            size = _write(rendered, output, target, root, options)
            results.append({"path": target.relative_to(root).as_posix(),
                            "width": rendered.width, "height": rendered.height,
                            "format": output.format, "bytes": size})
            if rendered is not base:
                rendered.close()
        width, height = image.size
        if image.getexif().get(_ORIENTATION) in (5, 6, 7, 8):  # on its side
            width, height = height, width
        return {"source": {"format": source_format, "width": width, "height": height},
                "outputs": results}
    finally:
        image.close()
        if upright is not None:
            upright.close()


def install(
    queue: DurableQueue, settings: ImageSettings | Mapping[str, Any]
) -> Task[[str, list[dict[str, Any]]], dict[str, Any]]:
    """Keep ``settings`` on ``queue`` and register :func:`process_image` as
    :data:`TASK_NAME`; return the task to enqueue with::

        process_image = image.install(queue, {"input_dirs": ["/srv/uploads"],
                                              "output_dir": "/srv/media"})
        process_image.enqueue("42.jpg", image.sizes("thumbs/42", [200, 800]))

    ``settings`` is an :class:`ImageSettings` or a mapping of its fields;
    installing again replaces them. Raises ConfigurationError for bad settings,
    when ``max_pixels`` is above Pillow's
    process-wide ``PIL.Image.MAX_IMAGE_PIXELS`` (raise that at startup), or when
    this Pillow cannot write an output format.
    """
    if not isinstance(settings, ImageSettings):
        settings = ImageSettings.from_mapping(settings)
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and settings.max_pixels > limit:
        raise ConfigurationError(
            f"max_pixels ({settings.max_pixels:,}) is above Pillow's process-wide limit "
            f"PIL.Image.MAX_IMAGE_PIXELS ({limit:,}), which would refuse such images first; "
            "lower max_pixels or raise Image.MAX_IMAGE_PIXELS once at startup")
    Image.init()
    missing = [fmt for fmt in settings.output_formats if fmt not in Image.SAVE]
    if missing:
        raise ConfigurationError(f"this Pillow cannot write {', '.join(missing)}; "
                                 "remove it from output_formats or install a Pillow with it")
    queue.extensions[EXTENSION_KEY] = settings  # installing again replaces the settings
    return queue.task(name=TASK_NAME, max_attempts=settings.max_attempts)(process_image)
