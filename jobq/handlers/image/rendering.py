"""What each output looks like: its size, its pixels and the options it is saved with.

Rule: in-memory image operations only; this module opens, reads and writes no
file (``files`` does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image, ImageOps

from ...errors import Fail
from .settings import ImageSettings
from .specs import Output

__all__ = [
    "check_crop",
    "check_output_pixels",
    "contained",
    "output_size",
    "render",
    "save_options",
]


def check_crop(image: Image.Image, output: Output) -> None:
    if output.crop is not None:
        left, top, width, height = output.crop
        if left + width > image.width or top + height > image.height:
            raise Fail(
                f"{output.where}.crop ({left}, {top}, {width} x {height}) reaches "
                f"outside the image ({image.width} x {image.height})"
            )


def contained(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The largest size inside ``box`` with the aspect ratio of ``size``, as
    ``ImageOps.contain`` computes it (but never 0 pixels wide or high)."""
    width, height = size
    if width * box[1] > box[0] * height:  # wider than the box
        return box[0], max(1, round(height / width * box[0]))
    if width * box[1] < box[0] * height:
        return max(1, round(width / height * box[1])), box[1]
    return box


def output_size(size: tuple[int, int], output: Output) -> tuple[int, int]:
    """The width and height ``output`` gets from a source of ``size`` (as oriented)."""
    if output.crop is not None:
        size = output.crop[2], output.crop[3]
    if output.resize is not None:
        width, height, mode = output.resize
        return (width, height) if mode == "fill" else contained(size, (width, height))
    if output.thumbnail is not None:
        box = output.thumbnail
        if size[0] > box[0] or size[1] > box[1]:
            return contained(size, box)
    return size


def check_output_pixels(
    bases: Sequence[Image.Image], plan: Sequence[Output], settings: ImageSettings
) -> None:
    """Fail before any output is made when, together, they would have more pixels than
    ``max_output_pixels``: a tiny source may ask for many huge outputs."""
    sizes = [output_size(base.size, output) for base, output in zip(bases, plan, strict=True)]
    total = sum(width * height for width, height in sizes)
    if total > settings.max_output_pixels:
        each = ", ".join(f"{width} x {height}" for width, height in sizes)
        raise Fail(
            f"the outputs would have {total:,} pixels in all ({each}), more than "
            f"max_output_pixels ({settings.max_output_pixels:,}); ask for fewer "
            "or smaller outputs"
        )


def render(image: Image.Image, output: Output) -> Image.Image:
    """Crop, then resize or thumbnail; JPEG gets transparency flattened on white."""
    if output.crop is not None:
        left, top, width, height = output.crop
        image = image.crop((left, top, left + width, top + height))
    lanczos = Image.Resampling.LANCZOS
    size = output_size(image.size, output)
    if output.resize is not None and output.resize[2] == "fill":
        image = ImageOps.fit(image, size, lanczos)
    elif size != image.size:
        image = image.resize(size, lanczos)
    if output.format == "JPEG" and image.mode == "RGBA":
        flat = Image.new("RGB", image.size, "white")
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    return image


def save_options(
    output: Output, settings: ImageSettings, metadata: Mapping[Any, Any]
) -> dict[str, Any]:
    """The keyword arguments of Pillow's ``save`` for ``output``: quality, effort
    and the metadata kept from the source (``metadata``, its ``.info``)."""
    options: dict[str, Any] = {}
    if output.format in ("JPEG", "WEBP"):
        options["quality"] = output.quality if output.quality is not None else settings.quality
    if output.optimize:
        options.update({"method": 6} if output.format == "WEBP" else {"optimize": True})
    if metadata.get("icc_profile"):  # colour data, not personal data: kept
        options["icc_profile"] = metadata["icc_profile"]
    if not output.strip_metadata:
        options.update(_kept_metadata(output.format, metadata))
    return options


def _kept_metadata(fmt: str, metadata: Mapping[Any, Any]) -> dict[str, Any]:
    """The comment, EXIF and XMP of the source that a ``fmt`` file can hold."""
    kept: dict[str, Any] = {}
    if metadata.get("comment") and fmt == "JPEG":
        kept["comment"] = metadata["comment"]
    if metadata.get("exif"):
        kept["exif"] = metadata["exif"]
    if metadata.get("xmp") and fmt in ("JPEG", "WEBP"):
        kept["xmp"] = metadata["xmp"]
    return kept
