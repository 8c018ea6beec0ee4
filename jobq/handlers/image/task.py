"""The image handler's task, ``jobq.image.process``, and how it is installed.

Rule: the only part of the image handler that knows of jobs and queues; it
runs the other modules in order: specs, paths, files, opening, rendering.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from ...context import current_job
from ...errors import ConfigurationError, Fail
from .._install import installed, settings_of
from .files import read_source, write
from .opening import decode, displayed_size, upright
from .paths import real, resolve_output, resolve_source
from .rendering import check_crop, check_output_pixels, render, save_options
from .settings import ImageSettings
from .specs import Output, parse_outputs

if TYPE_CHECKING:
    from ...queue import DurableQueue
    from ...tasks import Task

__all__ = ["EXTENSION_KEY", "TASK_NAME", "install", "process_image"]

EXTENSION_KEY = "jobq.image"
"""Key of the installed :class:`ImageSettings` in ``queue.extensions``."""

TASK_NAME = "jobq.image.process"
"""Name :func:`install` registers :func:`process_image` under."""


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
        settings = installed(
            EXTENSION_KEY, ImageSettings, "jobq.handlers.image.install(queue, settings)"
        )
    except ConfigurationError as exc:
        raise Fail(str(exc)) from None
    try:
        plan = parse_outputs(outputs, settings)
    except ValueError as exc:
        raise Fail(f"invalid image job: {exc}") from None
    # Every path is checked before any work, so a refused one leaves nothing written.
    path = resolve_source(source, settings)
    root = real(settings.output_dir)
    targets = _targets(plan, settings)
    image, source_format = _open_source(path, source, settings)
    turned: Image.Image | None = None
    try:
        if any(output.auto_orient for output in plan):
            turned = upright(image)
        bases = [turned if output.auto_orient and turned is not None else image for output in plan]
        for output, base in zip(plan, bases, strict=True):
            check_crop(base, output)
        check_output_pixels(bases, plan, settings)
        results = _make_outputs(plan, targets, bases, root, settings)
        width, height = displayed_size(image)
        return {
            "source": {"format": source_format, "width": width, "height": height},
            "outputs": results,
        }
    finally:
        image.close()
        if turned is not None:
            turned.close()


def _targets(plan: list[Output], settings: ImageSettings) -> list[Path]:
    """Where each output goes; Fail when two name the same file."""
    targets = [resolve_output(output, settings) for output in plan]
    for index, target in enumerate(targets):
        if target in targets[:index]:
            raise Fail(
                f"outputs[{targets.index(target)}].path and outputs[{index}].path "
                "name the same file"
            )
    return targets


def _open_source(path: Path, source: str, settings: ImageSettings) -> tuple[Image.Image, str]:
    """The decoded source and its format; its bytes are let go once decoded."""
    return decode(read_source(path, source, settings), source, settings)


def _make_outputs(
    plan: list[Output],
    targets: list[Path],
    bases: list[Image.Image],
    root: Path,
    settings: ImageSettings,
) -> list[dict[str, Any]]:
    """Render and write each output in turn, until the job is asked to cancel."""
    results: list[dict[str, Any]] = []
    job = current_job()
    for output, target, base in zip(plan, targets, bases, strict=True):
        if job.cancel_requested:
            break
        rendered = render(base, output)
        options = save_options(output, settings, base.info)
        size = write(rendered, output, target, root, options)
        results.append(
            {
                "path": target.relative_to(root).as_posix(),
                "width": rendered.width,
                "height": rendered.height,
                "format": output.format,
                "bytes": size,
            }
        )
        if rendered is not base:
            rendered.close()
    return results


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
    settings = settings_of(ImageSettings, settings, "JOBQ_IMAGE")
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and settings.max_pixels > limit:
        raise ConfigurationError(
            f"max_pixels ({settings.max_pixels:,}) is above Pillow's process-wide limit "
            f"PIL.Image.MAX_IMAGE_PIXELS ({limit:,}), which would refuse such images first; "
            "lower max_pixels or raise Image.MAX_IMAGE_PIXELS once at startup"
        )
    Image.init()
    missing = [fmt for fmt in settings.output_formats if fmt not in Image.SAVE]
    if missing:
        raise ConfigurationError(
            f"this Pillow cannot write {', '.join(missing)}; "
            "remove it from output_formats or install a Pillow with it"
        )
    queue.extensions[EXTENSION_KEY] = settings  # installing again replaces the settings
    return queue.task(name=TASK_NAME, max_attempts=settings.max_attempts)(process_image)
