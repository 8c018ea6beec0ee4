"""Opening untrusted images: only the allowed decoders, sizes checked from the
header before any pixel is decoded, and the decoded source made ready for output.

Rule: this module decodes bytes already read; it opens no file by path and
knows nothing of jobs beyond raising :class:`~jobq.Fail` for a bad source.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterable
from typing import Literal

from PIL import Image, ImageOps, UnidentifiedImageError

from ...errors import Fail, JobqError
from .settings import INPUT_FORMATS, ImageSettings, whole
from .settings import formats as check_formats

__all__ = ["ImageRejected", "decode", "displayed_size", "normalise", "open_image", "upright"]

ORIENTATION = 0x0112  # EXIF tag
# What Pillow raises for a file it cannot decode.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    struct.error,
    zlib.error,
    MemoryError,
)


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
    whole("max_pixels", max_pixels, 1)
    allowed = check_formats("formats", formats, INPUT_FORMATS)
    pillow_limit = Image.MAX_IMAGE_PIXELS
    limit = max_pixels if pillow_limit is None else min(max_pixels, pillow_limit)
    try:
        opened = Image.open(io.BytesIO(data), formats=allowed)
    except UnidentifiedImageError:
        # Also what Pillow says when an allowed format's header is too corrupt to read.
        raise ImageRejected(
            f"is not an image in an allowed format ({', '.join(allowed)}), "
            "or its header is corrupt",
            "format",
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own limit, checked while opening (the warning, when made an error).
        raise ImageRejected(
            f"has too many pixels (at most {limit:,}); it may be a decompression bomb", "pixels"
        ) from None
    except _DECODE_ERRORS as exc:
        raise ImageRejected(f"is not a readable image: {exc}", "unreadable") from None
    width, height = opened.size  # from the header: no pixel decoded yet
    if width * height > max_pixels:
        opened.close()
        raise ImageRejected(
            f"declares {width} x {height} = {width * height:,} pixels, more "
            f"than max_pixels ({max_pixels:,}); it may be a decompression bomb",
            "pixels",
        )
    return opened


def decode(data: bytes, source: str, settings: ImageSettings) -> tuple[Image.Image, str]:
    """The first frame of the image, loaded, as RGB, RGBA or L, its metadata in
    ``.info``, and its format; Fail if it is not a readable image within the limits."""
    try:
        opened = open_image(data, max_pixels=settings.max_pixels, formats=settings.input_formats)
    except ImageRejected as exc:
        raise Fail(f"source {source!r} {exc}") from None
    try:
        try:
            opened.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise Fail(
                f"source {source!r} has too many pixels (at most max_pixels = "
                f"{settings.max_pixels:,}); it may be a decompression bomb"
            ) from None
        except _DECODE_ERRORS as exc:
            raise Fail(
                f"source {source!r} is not a readable image (truncated or corrupt): {exc}"
            ) from None
        return normalise(opened), str(opened.format)
    except BaseException:
        opened.close()
        raise


def normalise(image: Image.Image) -> Image.Image:
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


def upright(image: Image.Image) -> Image.Image | None:
    """The image turned as its EXIF orientation says, orientation removed from its
    EXIF and XMP; None when it is upright already."""
    if image.getexif().get(ORIENTATION, 1) not in range(2, 9):
        return None
    return ImageOps.exif_transpose(image)


def displayed_size(image: Image.Image) -> tuple[int, int]:
    """The width and height of ``image`` as displayed, after its EXIF orientation."""
    width, height = image.size
    if image.getexif().get(ORIENTATION) in (5, 6, 7, 8):  # on its side
        return height, width
    return width, height
