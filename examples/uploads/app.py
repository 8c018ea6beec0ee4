"""Uploads: a Flask app that makes thumbnails of up to 20 images per request, 3 at a time.

``POST /upload`` takes several images in one multipart request (field ``images``)
and makes three thumbnails of each with Pillow: EXIF orientation applied,
metadata stripped, JPEG for opaque images and WebP for ones with transparency.
Every resize goes through ONE process-wide executor,
``jobq.executor("thumbnails", max_workers=3)``, so at most 3 run at a time
however many requests arrive; the request waits for its own with a bounded
timeout and answers JSON with one result per file, including the most resizes
that were running at once (never more than 3).

Bad input never crashes anything: a file that is not a JPEG, PNG, WebP or GIF
image (only those decoders are tried: an EPS or PDF named ``.jpg`` never reaches
Pillow's others, Ghostscript among them), a truncated or corrupt one, or one
with too many pixels (a decompression bomb) gets an error of its own while the
others succeed; no files, too many files or a body over ``MAX_CONTENT_LENGTH``
get a JSON 400 (413 for the size; 503 when too many images already wait in the
executor, 504 past the wait timeout). The client's file
names are only echoed back: outputs get generated names, are written under the
app's instance folder only, atomically (a temporary file, then ``os.replace``),
and are served by ``GET /thumbnails/<name>`` through ``send_from_directory``.

Run it from the repository's root (``dev.py run`` sets up ``.venv`` first, with Pillow)::

    python3 dev.py run examples/uploads/app.py --make-samples /tmp/jobq-samples   # 20 sample images
    python3 dev.py run examples/uploads/app.py          # serve on http://127.0.0.1:5000
    python3 dev.py run examples/uploads/app.py --check  # run the flow with the test client
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
import tempfile
import threading
import time
import uuid
import warnings
from concurrent.futures import wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request, send_from_directory
from PIL import Image, ImageDraw, ImageOps
from werkzeug.exceptions import BadRequest, HTTPException, NotFound

import jobq
from jobq.handlers.image import ImageRejected, open_image

EXECUTOR_NAME = "thumbnails"
MAX_WORKERS = 3
MAX_FILES = 20
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_CONTENT_LENGTH = MAX_FILES * MAX_FILE_BYTES + 1024 * 1024  # files plus multipart overhead
# At most this many resizes may wait, across all requests; past it a request gets 503.
MAX_QUEUED = 3 * MAX_FILES
MAX_PIXELS = 40_000_000  # a 40-megapixel photo is fine; a 30000 x 30000 "bomb" is not
TASK_TIMEOUT = 15.0  # one image, counted from the start of its resize
WAIT_TIMEOUT = 25.0  # the longest a request waits for its images (gunicorn's default is 30 s)
SIZES = {"small": 128, "medium": 320, "large": 800}  # bounding boxes, never upscaled
THUMBNAIL_NAME = re.compile(r"[0-9a-f]{32}-(?:small|medium|large)\.(?:jpg|webp)")
NOT_READABLE = "not a readable image"


def configure_pillow() -> None:
    """Refuse decompression bombs. Pillow warns above ``Image.MAX_IMAGE_PIXELS`` and
    refuses above twice that: make the warning an exception too, caught in decode_upload
    (jobq's open_image also checks MAX_PIXELS, in case someone filters the warning out)."""
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    warnings.simplefilter("error", Image.DecompressionBombWarning)


def thumbnail_executor() -> jobq.BoundedExecutor:
    """The one executor every request shares (same settings on every call: idempotent)."""
    return jobq.executor(
        EXECUTOR_NAME, max_workers=MAX_WORKERS, max_queued=MAX_QUEUED, when_full="raise"
    )


class Gauge:
    """Counts resizes running right now, and the most seen at once, for demonstration."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def enter(self) -> int:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            return self.running

    def leave(self) -> None:
        with self._lock:
            self.running -= 1

    def reset(self) -> None:
        with self._lock:
            self.peak = self.running


RESIZES = Gauge()


class Rejected(Exception):
    """An uploaded file that cannot be made into thumbnails; the message says why."""


@dataclass
class Outcome:
    thumbnails: list[dict[str, Any]]
    source: dict[str, Any]
    running_at_start: int  # resizes running (this one included) when it started


def make_thumbnails(data: bytes, directory: Path) -> Outcome:
    """Decode ``data`` and write its thumbnails into ``directory``. Runs in the executor."""
    running = RESIZES.enter()
    try:
        image, source = decode_upload(data)
        with image:
            image_id = uuid.uuid4().hex  # the client's file name is never part of a path
            thumbnails = [
                write_thumbnail(image, label, box, directory / f"{image_id}-{label}")
                for label, box in SIZES.items()
            ]
        return Outcome(thumbnails, source, running)
    finally:
        RESIZES.leave()


def decode_upload(data: bytes) -> tuple[Image.Image, dict[str, Any]]:
    """The first frame, decoded, upright, as RGB or RGBA, and what the source was
    (format, upright size); Rejected if it is not a readable image we accept.

    jobq's ``open_image`` tries only the JPEG, PNG, WebP and GIF decoders (never
    ``Image.open`` alone: it would hand an EPS file named ``cat.jpg`` to
    Ghostscript) and checks the pixel count from the header, before decoding."""
    try:
        with open_image(data, max_pixels=MAX_PIXELS) as opened:
            width, height = opened.size
            if opened.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF Orientation: on its side
                width, height = height, width
            source = {"format": opened.format, "width": width, "height": height}
            opened.draft("RGB", (max(SIZES.values()),) * 2)  # JPEG: decode at a smaller scale
            with ImageOps.exif_transpose(opened) as upright:  # loads the pixels; may raise
                alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
                return upright.convert("RGBA" if alpha else "RGB"), source
    except ImageRejected as error:  # before the generic ValueError: it is one
        corrupt = error.reason == "unreadable"  # said like the corrupt pixels below
        raise Rejected(NOT_READABLE if corrupt else f"{NOT_READABLE}: the file {error}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Rejected(f"{NOT_READABLE}: too many pixels (at most {MAX_PIXELS:,})") from None
    except (OSError, SyntaxError, ValueError, EOFError):  # truncated or corrupt pixels
        raise Rejected(NOT_READABLE) from None


def write_thumbnail(image: Image.Image, label: str, box: int, stem: Path) -> dict[str, Any]:
    """Resize a copy of ``image`` to fit ``box`` x ``box`` (never larger) and save it."""
    with image.copy() as thumb:
        thumb.thumbnail((box, box), Image.Resampling.LANCZOS)
        thumb.info = {}  # strip metadata: no EXIF, XMP, ICC profile or comment is written
        return save_atomically(thumb, label, stem)


def save_atomically(thumb: Image.Image, label: str, stem: Path) -> dict[str, Any]:
    """JPEG if opaque, WebP if not; a temporary file in the same folder, then os.replace."""
    opaque = thumb.mode == "RGB"
    format_, suffix = ("JPEG", ".jpg") if opaque else ("WEBP", ".webp")
    path = stem.with_suffix(suffix)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as file:
            thumb.save(file, format_, quality=85, optimize=opaque)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a web server may serve it
        os.replace(temporary, path)  # readers see the whole file or none
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return {
        "size": label,
        "width": thumb.width,
        "height": thumb.height,
        "format": format_,
        "bytes": path.stat().st_size,
        "url": f"/thumbnails/{path.name}",
    }


def create_app(instance_path: str | None = None) -> Flask:
    """Build the app; thumbnails go to ``<instance folder>/thumbnails``, by default
    ``examples/uploads/instance/thumbnails`` (git ignores ``instance/``)."""
    if instance_path is None:
        instance_path = str(Path(__file__).resolve().parent / "instance")
    app = Flask(__name__, instance_path=instance_path)
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    configure_pillow()  # process-wide settings, like the executor
    directory = Path(app.instance_path) / "thumbnails"
    directory.mkdir(parents=True, exist_ok=True)
    thumbnail_executor()  # configured once, where the app starts

    @app.errorhandler(HTTPException)
    def json_error(error: HTTPException) -> tuple[Response, int]:
        return jsonify(error=error.name, message=error.description), error.code or 500

    @app.get("/")
    def index() -> dict[str, Any]:
        return {
            "example": "jobq BoundedExecutor: thumbnails of uploaded images, 3 at a time",
            "how": (
                f"POST /upload resizes each image through the process-wide executor "
                f"jobq.executor({EXECUTOR_NAME!r}, max_workers={MAX_WORKERS}): at most "
                f"{MAX_WORKERS} resizes run at once, however many requests arrive."
            ),
            "endpoints": {
                "GET /": "this description",
                "POST /upload": (
                    f"multipart/form-data, 1 to {MAX_FILES} files in the field 'images', "
                    f"each at most {MAX_FILE_BYTES // (1024 * 1024)} MiB and {MAX_PIXELS:,} "
                    f"pixels; answers one result per file"
                ),
                "GET /thumbnails/<name>": "a generated thumbnail",
            },
            "sizes": SIZES,
            "try": "curl -s -F images=@photo.jpg -F images=@logo.png http://HOST/upload",
        }

    @app.post("/upload")
    def upload() -> tuple[dict[str, Any], int] | tuple[dict[str, Any], int, dict[str, str]]:
        files = uploaded_files()
        started = time.monotonic()
        jobs = thumbnail_executor().options(timeout=TASK_TIMEOUT)
        results: list[dict[str, Any]] = []
        futures = {}
        try:
            for index, (filename, data) in enumerate(files):
                results.append({"index": index, "filename": filename})
                if len(data) > MAX_FILE_BYTES:
                    results[-1]["error"] = f"larger than {MAX_FILE_BYTES:,} bytes"
                elif not data:
                    results[-1]["error"] = f"{NOT_READABLE}: the file is empty"
                else:
                    futures[index] = jobs.submit(make_thumbnails, data, directory)
        except jobq.QueueFull:
            for future in futures.values():
                future.cancel()
            busy = {
                "error": "Service Unavailable",
                "message": "too many images are waiting; try again shortly",
            }
            return busy, 503, {"Retry-After": "5"}
        done, not_done = wait(futures.values(), timeout=WAIT_TIMEOUT)
        for future in not_done:
            future.cancel()  # still waiting: drop it (a running one finishes on its own)

        peak = 0
        for index, future in futures.items():
            result = results[index]
            if future not in done:
                result["error"] = f"not processed within {WAIT_TIMEOUT:g} s"
            elif isinstance(error := future.exception(), Rejected):
                result["error"] = str(error)
            elif isinstance(error, TimeoutError):
                result["error"] = f"not processed within {TASK_TIMEOUT:g} s"
            elif error is not None:
                app.logger.error("thumbnail failed", exc_info=error)
                result["error"] = "internal error while making thumbnails"
            else:
                outcome = future.result()
                result.update(source=outcome.source, thumbnails=outcome.thumbnails)
                peak = max(peak, outcome.running_at_start)
        ok = sum("thumbnails" in result for result in results)
        body = {
            "files": len(results),
            "ok": ok,
            "failed": len(results) - ok,
            "results": results,
            # The most resizes running at once when one of this request's started,
            # and the most ever seen in this process: both at most MAX_WORKERS.
            "peak_concurrent_resizes": peak,
            "peak_concurrent_resizes_process": RESIZES.peak,
            "max_workers": MAX_WORKERS,
            "elapsed_seconds": round(time.monotonic() - started, 3),
        }
        if not_done:
            return body, 504
        if not ok:
            body["error"] = "Bad Request"
            body["message"] = "none of the files is a readable image"
            return body, 400
        return body, 200

    @app.get("/thumbnails/<name>")
    def thumbnail(name: str) -> Response:
        if not THUMBNAIL_NAME.fullmatch(name):
            raise NotFound("no such thumbnail")
        return send_from_directory(directory, name, max_age=3600)

    return app


def uploaded_files() -> list[tuple[str, bytes]]:
    """The request's files as (client's name, content), or a BadRequest saying what's wrong."""
    example = "curl -F images=@a.jpg -F images=@b.png .../upload"
    # A form's file input left empty sends a part with no file name: not a file.
    parts = [part for part in request.files.getlist("images") if part.filename]
    if not parts:
        others = sorted(request.files)
        hint = f" (got files in {others}; use 'images')" if others else ""
        raise BadRequest(
            f"no files: send 1 to {MAX_FILES} images as multipart/form-data in the field "
            f"'images'{hint}, e.g. {example}"
        )
    if len(parts) > MAX_FILES:
        raise BadRequest(f"too many files: {len(parts)}, at most {MAX_FILES} per request")
    files = []
    for part in parts:
        try:  # the name is only echoed back, never used as a path
            files.append(((part.filename or "")[:200], part.read(MAX_FILE_BYTES + 1)))
        finally:
            part.close()
    return files


# -- sample images ------------------------------------------------------------------


def sample_images(count: int = 20) -> list[tuple[str, bytes]]:
    """``count`` images of different formats, sizes, modes and EXIF orientations."""
    samples = []
    for number in range(count):
        kind = number % 5
        width, height = [
            (1600, 1200),
            (900, 1400),
            (1200, 800),
            (640, 480),
            (2000, 1000),
            (1000, 1500),
            (300, 200),
        ][number % 7]
        image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, 0, width, height // 8), fill=(220, 30, 30))  # a red top band
        draw.ellipse((width // 4, height // 4, width * 3 // 4, height * 3 // 4), fill=(30, 90, 200))
        draw.text((20, height // 2), f"sample {number + 1}", fill=(255, 255, 255))
        buffer = io.BytesIO()
        if kind == 0:  # a phone photo: stored sideways, EXIF says rotate 90 degrees clockwise
            exif = Image.Exif()
            exif[0x0112] = (6, 8, 3)[(number // 5) % 3]  # Orientation
            exif[0x010F] = "jobq sample camera"  # Make: metadata to strip
            image.save(buffer, "JPEG", quality=90, exif=exif)
            name = f"{number + 1:02d}-photo.jpg"
        elif kind == 1:  # a logo with transparency
            rgba = image.convert("RGBA")
            rgba.putalpha(Image.linear_gradient("L").resize((width, height)))
            rgba.save(buffer, "PNG")
            rgba.close()
            name = f"{number + 1:02d}-alpha.png"
        elif kind == 2:
            image.save(buffer, "WEBP", quality=80)
            name = f"{number + 1:02d}-picture.webp"
        elif kind == 3:
            palette = image.convert("P", palette=Image.Palette.ADAPTIVE)
            palette.save(buffer, "GIF")
            palette.close()
            name = f"{number + 1:02d}-palette.gif"
        else:
            gray = image.convert("L")
            gray.save(buffer, "JPEG", quality=85)
            gray.close()
            name = f"{number + 1:02d}-gray.jpg"
        image.close()
        samples.append((name, buffer.getvalue()))
    return samples


def write_samples(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in sample_images():
        path = directory / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def curl_command(base: str, paths: list[Path]) -> str:
    fields = " ".join(f"-F images=@{path}" for path in paths)
    return f"curl -s {fields} {base}/upload"


def multipart_body(files: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    """A multipart body with ``files`` in the field ``images``: (boundary, body).

    Built in memory: the test client's own encoder spools big bodies to a
    temporary file it never closes (a ResourceWarning)."""
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    parts = [FileStorage(io.BytesIO(content), filename=name) for name, content in files]
    return encode_multipart({"images": parts})


# -- --check ------------------------------------------------------------------------


def check() -> bool:
    """Run the whole flow with Flask's test client; True if every expectation holds."""
    scratch = tempfile.TemporaryDirectory(prefix="jobq-uploads-check-")
    app = create_app(instance_path=scratch.name)
    client = app.test_client()
    failures: list[str] = []

    def expect(name: str, ok: bool, detail: str = "") -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {name}{f': {detail}' if detail else ''}")
        if not ok:
            failures.append(name)

    def post(files: list[tuple[str, bytes]]) -> Any:
        boundary, data = multipart_body(files)
        return client.post(
            "/upload", data=data, content_type=f"multipart/form-data; boundary={boundary}"
        )

    try:
        expect(
            "GET / describes the endpoints",
            "POST /upload" in client.get("/").get_json()["endpoints"],
        )
        samples = sample_images()
        print(
            f"POST /upload with {len(samples)} images (JPEG with EXIF orientation, "
            f"PNG with alpha, WebP, GIF, grayscale JPEG)..."
        )
        reply = post(samples)
        body = reply.get_json()
        print(
            f"  {body['ok']} ok, {body['failed']} failed in {body['elapsed_seconds']} s; "
            f"peak concurrent resizes {body['peak_concurrent_resizes']}"
        )
        expect("answers 200", reply.status_code == 200, str(reply.status_code))
        made = [result for result in body["results"] if len(result.get("thumbnails", [])) == 3]
        expect("every image got 3 thumbnails", len(made) == len(samples), f"{len(made)}")
        formats = sorted({thumb["format"] for result in made for thumb in result["thumbnails"]})
        expect("JPEG for opaque images, WebP for transparent ones", formats == ["JPEG", "WEBP"])
        sideways = body["results"][0]  # 1600 x 1200 stored, EXIF orientation 6
        large = sideways["thumbnails"][2]
        expect(
            "EXIF orientation applied",
            large["height"] > large["width"],
            f"{large['width']} x {large['height']}",
        )
        served = client.get(large["url"])
        expect(
            "GET /thumbnails/<name> serves it",
            served.status_code == 200 and served.mimetype == "image/jpeg",
        )
        served.close()
        peak = body["peak_concurrent_resizes_process"]
        expect(
            "at most 3 resizes ran at once, and more than 1",
            1 < peak <= MAX_WORKERS,
            f"peak {peak}",
        )

        corrupt = b"\xff\xd8\xff\xe0" + os.urandom(2000)  # starts like a JPEG, isn't one
        mixed = [samples[2], ("corrupt.jpg", corrupt), ("notes.txt", b"hello")]
        reply = post(mixed)
        results = reply.get_json()["results"]
        print(f"  corrupt file: {results[1]}")
        expect(
            "a corrupt file is reported while the others succeed",
            reply.status_code == 200
            and "thumbnails" in results[0]
            and results[1].get("error", "").startswith(NOT_READABLE)
            and results[2].get("error", "").startswith(NOT_READABLE),
        )
        eps = io.BytesIO()
        Image.new("RGB", (20, 20), "red").save(eps, "EPS")  # PostScript: Ghostscript decodes it
        reply = post([("cat.jpg", eps.getvalue())])
        error = reply.get_json()["results"][0].get("error", "")
        expect(
            "an EPS file named cat.jpg is refused, no decoder but the allowed ones tried",
            reply.status_code == 400 and "not an image in an allowed format" in error,
            error,
        )

        too_many = post([samples[3]] * (MAX_FILES + 1))
        expect(
            f"{MAX_FILES + 1} files answer 400",
            too_many.status_code == 400,
            too_many.get_json()["message"],
        )
        nothing = post([])
        expect("no files answer 400", nothing.status_code == 400, nothing.get_json()["message"])
        expect(
            "GET /thumbnails/../app.py answers 404",
            client.get("/thumbnails/..%2Fapp.py").status_code == 404,
        )
        expect(
            "nothing but thumbnails in the instance folder",
            all(
                THUMBNAIL_NAME.fullmatch(path.name)
                for path in (Path(scratch.name) / "thumbnails").iterdir()
            ),
        )
    finally:
        thumbnail_executor().shutdown(cancel_futures=True)
        scratch.cleanup()
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    return not failures


def main() -> int:
    parser = argparse.ArgumentParser(description="jobq uploads example: thumbnails, 3 at a time.")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument(
        "--make-samples",
        metavar="DIR",
        type=Path,
        help=f"write {MAX_FILES} sample images into DIR, print a curl command",
    )
    parser.add_argument(
        "--check", action="store_true", help="run the flow with Flask's test client, then exit"
    )
    args = parser.parse_args()
    base = f"http://{args.host}:{args.port}"
    if args.check:
        return 0 if check() else 1
    if args.make_samples is not None:
        paths = write_samples(args.make_samples)
        print(f"wrote {len(paths)} images to {args.make_samples}; with the app running:\n")
        print(f"  {curl_command(base, paths)}")
        return 0

    app = create_app()
    samples = Path(tempfile.gettempdir()) / "jobq-samples"
    paths = sorted(samples.glob("*")) or [samples / "01-photo.jpg", samples / "02-alpha.png"]
    print(f"jobq uploads example on {base}, thumbnails in {app.instance_path}. Try:\n")
    print(f"  {sys.executable} {sys.argv[0]} --make-samples {samples}")
    print(f"  {curl_command(base, paths)}")
    print(f"  curl -s {base}/\n")
    try:
        app.run(host=args.host, port=args.port, use_reloader=False)
    finally:
        thumbnail_executor().shutdown(cancel_futures=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
