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

The handler's modules, from the bottom up: ``settings`` (:class:`ImageSettings`),
``specs`` (output specs, :func:`sizes`, :func:`validate_outputs`), ``paths``
(keeping every path inside its folder), ``opening`` (:func:`open_image` and
decoding), ``rendering`` (each output's size, pixels and save options),
``files`` (bounded reads, atomic writes) and ``task`` (the task and its
installation). This package only re-exports their public names.
"""

from __future__ import annotations

try:
    import PIL  # noqa: F401  (every module of this package needs it)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "jobq.handlers.image needs Pillow; install it with: pip install 'jobq[images]'"
    ) from exc

from .opening import ImageRejected, open_image
from .settings import INPUT_FORMATS, OUTPUT_FORMATS, ImageSettings
from .specs import MAX_SIDE, sizes, validate_outputs
from .task import EXTENSION_KEY, TASK_NAME, install, process_image

__all__ = [
    "EXTENSION_KEY",
    "INPUT_FORMATS",
    "MAX_SIDE",
    "OUTPUT_FORMATS",
    "TASK_NAME",
    "ImageRejected",
    "ImageSettings",
    "install",
    "open_image",
    "process_image",
    "sizes",
    "validate_outputs",
]
