"""jobq.handlers.image on real images, a real queue and a real worker pool."""

from __future__ import annotations

import errno
import io
import os
import re
import resource
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobq import ConfigurationError, DurableQueue, Job, JobStatus, Task
from jobq.testing import FakeClock
from tests.helpers import eventually

Image = pytest.importorskip("PIL.Image")
image = pytest.importorskip("jobq.handlers.image")

ImageTask = Task[[str, list[dict[str, Any]]], dict[str, Any]]
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


# -- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    return folder


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"  # made by the handler when it first writes


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.fixture
def queue(tmp_path: Path, clock: FakeClock) -> Iterator[DurableQueue]:
    queue = DurableQueue(tmp_path / "jobs.db", clock=clock)
    yield queue
    queue.close()


@pytest.fixture
def task(queue: DurableQueue, inbox: Path, out: Path) -> ImageTask:
    return image.install(queue, image.ImageSettings(input_dirs=(str(inbox),), output_dir=str(out)))


def run(queue: DurableQueue, task: ImageTask, source: str, outputs: list[dict[str, Any]]) -> Job:
    job = task.enqueue(source, outputs)
    queue.run_until_empty()
    return queue.get(job.id)


def result_of(job: Job) -> dict[str, Any]:
    assert job.status is JobStatus.COMPLETED, job.error
    result: dict[str, Any] = job.decoded_result()
    return result


def failure_of(job: Job) -> str:
    assert job.status is JobStatus.FAILED, job.status
    assert job.attempts == 1  # bad input fails at once, however many attempts are allowed
    assert job.error is not None
    assert job.error.type == "Fail"
    return job.error.message


def halves(size: tuple[int, int] = (40, 20), mode: str = "RGB") -> Any:
    """Left half red, right half blue: where each colour ends shows the orientation."""
    picture = Image.new(mode, size, BLUE)
    picture.paste(RED, (0, 0, size[0] // 2, size[1]))
    return picture


def noise(size: tuple[int, int]) -> Any:
    return Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))


def save(picture: Any, path: Path, fmt: str, **options: Any) -> Path:
    picture.save(path, fmt, **options)
    return path


def exif_with(orientation: int | None = None) -> Any:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 30.0)  # GPSLatitudeRef, GPSLatitude
    if orientation is not None:
        exif[0x0112] = orientation
    return exif


def opened(path: Path) -> Any:
    picture = Image.open(path)
    picture.load()
    return picture


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def crafted_png(width: int, height: int, extra: bytes = b"") -> bytes:
    """A few bytes that declare ``width`` x ``height`` RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + extra
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 4))
        + png_chunk(b"IEND", b"")
    )


def files_in(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


# -- operations ---------------------------------------------------------------------------


def test_fit_fill_thumbnail_crop_from_one_decode(
    queue: DurableQueue, task: ImageTask, inbox: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save(noise((400, 300)), inbox / "photo.jpg", "JPEG")
    real_open, opens = Image.open, []
    monkeypatch.setattr(Image, "open", lambda *a, **k: opens.append(1) or real_open(*a, **k))
    outputs: list[dict[str, Any]] = [
        {"path": "fit.jpg", "resize": {"width": 200, "height": 200, "mode": "fit"}},
        {"path": "fill.jpg", "resize": {"width": 200, "height": 200, "mode": "fill"}},
        {"path": "big-fit.jpg", "resize": {"width": 800, "height": 800}},  # fit enlarges
        {"path": "thumb.jpg", "thumbnail": [100, 100]},
        {"path": "thumb-big.jpg", "thumbnail": [1000, 1000]},  # never enlarged
        {"path": "crop/a.png", "crop": {"left": 10, "top": 20, "width": 100, "height": 50}},
        {
            "path": "crop/b.png",
            "crop": {"left": 0, "top": 0, "width": 300, "height": 300},
            "thumbnail": [150, 150],
        },
    ]
    result = result_of(run(queue, task, "photo.jpg", outputs))
    assert opens == [1]
    expected = {
        "fit.jpg": (200, 150),
        "fill.jpg": (200, 200),
        "big-fit.jpg": (800, 600),
        "thumb.jpg": (100, 75),
        "thumb-big.jpg": (400, 300),
        "crop/a.png": (100, 50),
        "crop/b.png": (150, 150),
    }
    assert result["source"] == {"format": "JPEG", "width": 400, "height": 300}
    assert [entry["path"] for entry in result["outputs"]] == list(expected)
    for entry in result["outputs"]:
        written = opened(out / entry["path"])
        assert written.size == expected[entry["path"]] == (entry["width"], entry["height"])
        assert written.format == entry["format"]
        assert entry["bytes"] == (out / entry["path"]).stat().st_size
    assert files_in(out) == sorted(expected)  # no temporary file left behind


def test_crop_takes_the_asked_pixels(
    queue: DurableQueue, task: ImageTask, inbox: Path, out: Path
) -> None:
    save(halves((40, 20)), inbox / "halves.png", "PNG")
    right = {"left": 20, "top": 0, "width": 20, "height": 20}
    result_of(run(queue, task, "halves.png", [{"path": "right.png", "crop": right}]))
    written = opened(out / "right.png")
    assert written.size == (20, 20)
    assert written.getcolors() == [(400, BLUE)]


def test_format_conversions(queue: DurableQueue, task: ImageTask, inbox: Path, out: Path) -> None:
    alpha = Image.new("RGBA", (60, 40), (0, 0, 0, 0))  # transparent, one opaque red square
    alpha.paste((255, 0, 0, 255), (0, 0, 20, 20))
    save(alpha, inbox / "alpha.png", "PNG")
    save(halves(), inbox / "halves.webp", "WEBP", lossless=True)
    gif = halves().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    save(gif, inbox / "anim.gif", "GIF", transparency=gif.getpixel((0, 0)))

    made = result_of(
        run(
            queue,
            task,
            "alpha.png",
            [
                {"path": "alpha.jpg"},
                {"path": "alpha.webp"},
                {"path": "alpha-copy.PNG", "format": "png"},
            ],
        )
    )["outputs"]
    assert [(m["format"], m["width"], m["height"]) for m in made] == [
        ("JPEG", 60, 40),
        ("WEBP", 60, 40),
        ("PNG", 60, 40),
    ]
    jpeg = opened(out / "alpha.jpg")
    assert (jpeg.format, jpeg.mode) == ("JPEG", "RGB")
    assert all(abs(a - b) < 12 for a, b in zip(jpeg.getpixel((50, 30)), WHITE, strict=True))
    assert all(abs(a - b) < 40 for a, b in zip(jpeg.getpixel((5, 5)), RED, strict=True))
    webp = opened(out / "alpha.webp")
    assert (webp.format, webp.mode) == ("WEBP", "RGBA")
    assert webp.getpixel((50, 30))[3] == 0
    png = opened(out / "alpha-copy.PNG")
    assert (png.format, png.getpixel((50, 30))[3], png.getpixel((5, 5))) == (
        "PNG",
        0,
        (255, 0, 0, 255),
    )

    result_of(run(queue, task, "halves.webp", [{"path": "from-webp.png"}]))
    converted = opened(out / "from-webp.png")
    assert (converted.format, converted.size, converted.getpixel((0, 0))) == ("PNG", (40, 20), RED)

    result = result_of(run(queue, task, "anim.gif", [{"path": "from-gif.png"}]))
    assert result["source"]["format"] == "GIF"
    from_gif = opened(out / "from-gif.png")
    assert from_gif.mode == "RGBA"
    assert from_gif.getpixel((1, 1))[3] == 0  # the transparent colour stays transparent
    assert from_gif.getpixel((30, 10)) == (*BLUE, 255)


def test_quality_changes_the_size(queue: DurableQueue, task: ImageTask, inbox: Path) -> None:
    save(noise((200, 200)), inbox / "noise.png", "PNG")
    made = result_of(
        run(
            queue,
            task,
            "noise.png",
            [
                {"path": "low.jpg", "quality": 20},
                {"path": "high.jpg", "quality": 95},
                {"path": "low.webp", "quality": 20},
                {"path": "default.webp"},
                {"path": "optimized.jpg", "quality": 95, "optimize": True},
            ],
        )
    )["outputs"]
    size = {m["path"]: m["bytes"] for m in made}
    assert size["low.jpg"] < size["high.jpg"] * 0.6
    assert size["low.webp"] < size["default.webp"] * 0.8
    assert size["optimized.jpg"] < size["high.jpg"]


def test_exif_orientation_is_applied_and_metadata_stripped(
    queue: DurableQueue, task: ImageTask, inbox: Path, out: Path
) -> None:
    # Stored 40 x 20, red on the left; orientation 6 means "turn 90 degrees clockwise".
    save(halves((40, 20)), inbox / "sideways.jpg", "JPEG", exif=exif_with(orientation=6))
    result = result_of(
        run(
            queue,
            task,
            "sideways.jpg",
            [
                {"path": "upright.jpg"},
                {"path": "upright.webp"},
                {"path": "upright.png"},
                {"path": "raw.jpg", "auto_orient": False},
            ],
        )
    )
    assert result["source"] == {"format": "JPEG", "width": 20, "height": 40}
    for name in ("upright.jpg", "upright.webp", "upright.png"):
        upright = opened(out / name)
        assert upright.size == (20, 40)
        top, bottom = upright.convert("RGB").getpixel((10, 3)), upright.getpixel((10, 36))
        assert (top[0] > 200, top[2] < 60) == (True, True), (name, top)  # red now on top
        assert (bottom[0] < 60, bottom[2] > 200) == (True, True), (name, bottom)
        assert "exif" not in upright.info
        assert not upright.getexif()
    raw = opened(out / "raw.jpg")
    assert raw.size == (40, 20)
    assert raw.getpixel((3, 10))[0] > 200
    assert not raw.getexif()


def test_metadata_kept_when_asked(
    queue: DurableQueue, task: ImageTask, inbox: Path, out: Path
) -> None:
    save(
        halves((40, 20)),
        inbox / "sideways.jpg",
        "JPEG",
        exif=exif_with(orientation=6),
        comment=b"shot at home",
    )
    result_of(
        run(
            queue,
            task,
            "sideways.jpg",
            [
                {"path": "stripped.jpg"},
                {"path": "kept.jpg", "strip_metadata": False},
                {"path": "kept.webp", "strip_metadata": False},
                {"path": "kept-raw.jpg", "strip_metadata": False, "auto_orient": False},
            ],
        )
    )
    for name in ("kept.jpg", "kept.webp"):
        exif = opened(out / name).getexif()
        assert exif[0x010F] == "TestCam"
        assert exif.get_ifd(0x8825)[1] == "N"  # the GPS position is kept too
        assert exif.get(0x0112, 1) == 1  # turned upright: no orientation left to apply
        assert opened(out / name).size == (20, 40)
    stripped = opened(out / "stripped.jpg")
    assert "comment" not in stripped.info
    assert not stripped.getexif()
    assert opened(out / "kept.jpg").info["comment"] == b"shot at home"
    raw = opened(out / "kept-raw.jpg")
    assert raw.size == (40, 20)
    assert raw.getexif()[0x0112] == 6  # not turned: viewers still turn it


def test_sizes_helper_and_validate_outputs(
    queue: DurableQueue, task: ImageTask, inbox: Path, out: Path
) -> None:
    specs = image.sizes("thumbs/42", [64, (120, 80), 300], format="jpeg", quality=70)
    assert specs[1] == {
        "path": "thumbs/42-120x80.jpeg",
        "format": "jpeg",
        "thumbnail": [120, 80],
        "quality": 70,
    }
    save(noise((200, 100)), inbox / "42.png", "PNG")
    made = result_of(run(queue, task, "42.png", specs))["outputs"]
    assert [(m["path"], m["width"], m["height"]) for m in made] == [
        ("thumbs/42-64x64.jpeg", 64, 32),
        ("thumbs/42-120x80.jpeg", 120, 60),
        ("thumbs/42-300x300.jpeg", 200, 100),
    ]
    filled = image.sizes("f", [50], mode="fill")
    assert filled[0]["resize"] == {"width": 50, "height": 50, "mode": "fill"}
    with pytest.raises(ValueError, match=r"outputs\[0\]\.format"):
        image.sizes("x", [10], format="bmp")
    with pytest.raises(ValueError, match=r"outputs\[0\]\.resize\.mode"):
        image.validate_outputs(
            [{"path": "a.png", "resize": {"width": 1, "height": 1, "mode": "stretch"}}]
        )
    settings = image.ImageSettings(input_dirs=("in",), output_dir="out", max_outputs=1)
    with pytest.raises(ValueError, match="max_outputs"):
        image.validate_outputs(image.sizes("x", [1, 2]), settings)


@pytest.mark.parametrize(
    "path",
    [
        "page.html",
        "shell.php",
        ".htaccess",
        "evil.svg",
        "no-extension",
        "x.png.",
        "a.jpg.html",
        "dir.png/file",
    ],
)
def test_an_output_path_must_have_its_formats_extension(
    queue: DurableQueue, task: ImageTask, inbox: Path, out: Path, path: str
) -> None:
    # A kept JPEG comment written as page.html or shell.php would be served as a page.
    save(halves(), inbox / "a.jpg", "JPEG", comment=b"<html><script>alert(1)</script><?php ?>")
    spec = {"path": path, "format": "jpeg", "strip_metadata": False}
    expected = (
        f"outputs[0].path {path!r} must end in .jpg or .jpeg to be written as "
        "outputs[0].format 'jpeg'"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):  # where specs are built...
        image.validate_outputs([spec])
    message = failure_of(run(queue, task, "a.jpg", [spec]))  # ...and when the job runs
    assert message == f"invalid image job: {expected}"
    unnamed = {"path": path}  # no format: the extension must name one
    assert "must end in .jpg, .jpeg, .png or .webp" in failure_of(
        run(queue, task, "a.jpg", [unnamed])
    )
    assert files_in(out) == []


def test_each_format_takes_its_own_extensions(
    queue: DurableQueue, task: ImageTask, inbox: Path, out: Path
) -> None:
    save(halves(), inbox / "a.png", "PNG")
    specs = [
        {"path": "a.jpg", "format": "jpeg"},
        {"path": "b.JPEG", "format": "jpg"},
        {"path": "c.png", "format": "PNG"},
        {"path": "d.webp", "format": "webp"},
        {"path": "e.Jpg"},
    ]
    made = result_of(run(queue, task, "a.png", specs))["outputs"]
    assert [m["format"] for m in made] == ["JPEG", "JPEG", "PNG", "WEBP", "JPEG"]
    for path, fmt in [("a.webp", "png"), ("a.jpg", "webp"), ("a.png", "jpg"), ("a.gif", "png")]:
        with pytest.raises(ValueError, match="must end in"):
            image.validate_outputs([{"path": path, "format": fmt}])


def test_a_job_may_not_ask_for_more_output_pixels_than_its_budget(
    queue: DurableQueue, task: ImageTask, inbox: Path, out: Path
) -> None:
    save(Image.new("RGB", (1, 1), RED), inbox / "dot.png", "PNG")  # 69 bytes
    huge = [{"path": f"huge{n}.png", "resize": {"width": 7071, "height": 7071}} for n in range(3)]
    settings = queue.extensions[image.EXTENSION_KEY]
    image.validate_outputs(huge, settings)  # each box is within max_pixels: only the sum is not
    message = failure_of(run(queue, task, "dot.png", huge))
    assert message == (
        "the outputs would have 149,997,123 pixels in all (7071 x 7071, 7071 x 7071, "
        "7071 x 7071), more than max_output_pixels (100,000,000); ask for fewer or "
        "smaller outputs"
    )
    assert files_in(out) == []  # refused before the first output was made


def test_the_output_pixel_budget_counts_the_sizes_really_made(
    queue: DurableQueue, inbox: Path, out: Path
) -> None:
    # Stored 100 x 200, shown 200 x 100: a 200 x 50 box fits 100 x 50 upright, 25 x 50 not.
    save(halves((100, 200)), inbox / "side.jpg", "JPEG", exif=exif_with(orientation=6))
    specs: list[dict[str, Any]] = [
        {"path": "upright.png", "resize": {"width": 200, "height": 50}},
        {"path": "stored.png", "resize": {"width": 200, "height": 50}, "auto_orient": False},
        {"path": "filled.png", "resize": {"width": 30, "height": 10, "mode": "fill"}},
        {
            "path": "small.png",
            "thumbnail": [1000, 1000],
            "crop": {"left": 0, "top": 0, "width": 20, "height": 10},
        },
    ]
    total = 100 * 50 + 25 * 50 + 30 * 10 + 20 * 10  # 6,750
    task = image.install(
        queue, {"input_dirs": [str(inbox)], "output_dir": str(out), "max_output_pixels": total}
    )
    made = result_of(run(queue, task, "side.jpg", specs))["outputs"]
    assert [(m["width"], m["height"]) for m in made] == [(100, 50), (25, 50), (30, 10), (20, 10)]
    task = image.install(
        queue, {"input_dirs": [str(inbox)], "output_dir": str(out), "max_output_pixels": total - 1}
    )
    assert (
        "6,750 pixels in all (100 x 50, 25 x 50, 30 x 10, 20 x 10), more than "
        "max_output_pixels (6,749)" in failure_of(run(queue, task, "side.jpg", specs))
    )


def test_open_image_tries_only_the_allowed_decoders(tmp_path: Path) -> None:
    eps, jpeg, bomb = io.BytesIO(), io.BytesIO(), crafted_png(5_000, 5_000)
    halves().save(eps, "EPS")
    halves().save(jpeg, "JPEG")
    for data, kwargs, reason, fragment in [
        (
            eps.getvalue(),
            {},
            "format",
            "is not an image in an allowed format (JPEG, PNG, WEBP, GIF)",
        ),
        (b"hello", {}, "format", "is not an image in an allowed format"),
        (jpeg.getvalue(), {"formats": ["png", "webp"]}, "format", "allowed format (PNG, WEBP)"),
        (
            bomb,
            {},
            "pixels",
            "declares 5000 x 5000 = 25,000,000 pixels, more than max_pixels "
            "(1,000,000); it may be a decompression bomb",
        ),
    ]:
        with pytest.raises(image.ImageRejected) as rejected:
            image.open_image(data, max_pixels=1_000_000, **kwargs)
        assert (rejected.value.reason, fragment in str(rejected.value)) == (reason, True)
    with image.open_image(jpeg.getvalue(), max_pixels=800, formats=["jpg"]) as picture:
        picture.load()  # 40 x 20 = 800 pixels: allowed
        assert (picture.format, picture.size) == ("JPEG", (40, 20))
    with pytest.raises(ValueError, match="formats may only hold JPEG, PNG, WEBP, GIF; got 'EPS'"):
        image.open_image(eps.getvalue(), max_pixels=10, formats=["EPS"])
    with pytest.raises(ValueError, match="max_pixels must be a whole number"):
        image.open_image(jpeg.getvalue(), max_pixels=0)


# -- paths ------------------------------------------------------------------------------


def test_source_paths_outside_the_input_folders_are_refused(
    queue: DurableQueue, task: ImageTask, inbox: Path, out: Path, outside: Path
) -> None:
    secret = save(halves(), outside / "secret.png", "PNG")
    (inbox / "link.png").symlink_to(secret)
    (inbox / "linked-dir").symlink_to(outside, target_is_directory=True)
    for source in [
        "../outside/secret.png",
        str(secret),
        "link.png",
        "linked-dir/secret.png",
        "sub/../../outside/secret.png",
        str(inbox),
    ]:
        message = failure_of(run(queue, task, source, [{"path": "x.png"}]))
        assert "outside the input folders" in message, (source, message)
        assert repr(source) in message
    assert files_in(out) == []
    inner = save(halves(), inbox / "inner.png", "PNG")
    (inbox / "inner-link.png").symlink_to(inner)  # a symlink that stays inside is fine
    result_of(run(queue, task, "inner-link.png", [{"path": "ok.png"}]))
    result_of(run(queue, task, str(inner), [{"path": "ok2.png"}]))
    assert files_in(out) == ["ok.png", "ok2.png"]


def test_output_paths_outside_the_output_folder_are_refused(
    queue: DurableQueue, task: ImageTask, inbox: Path, out: Path, outside: Path
) -> None:
    save(halves(), inbox / "a.png", "PNG")
    out.mkdir()
    (out / "escape").symlink_to(outside, target_is_directory=True)
    (out / "victim.png").symlink_to(outside / "victim.png")
    (outside / "victim.png").write_bytes(b"precious")
    for path in [
        "../outside/x.png",
        str(outside / "x.png"),
        "escape/x.png",
        "victim.png",
        "a/../../outside/x.png",
    ]:
        # The first output is fine; it must not be written either: paths are checked first.
        job = run(queue, task, "a.png", [{"path": "first.png"}, {"path": path}])
        message = failure_of(job)
        assert f"outputs[1].path {path!r} is outside the output folder" in message
    assert files_in(outside) == ["victim.png"]
    assert (outside / "victim.png").read_bytes() == b"precious"
    assert files_in(out) == ["victim.png"]  # only the symlink made by this test
    made = result_of(
        run(
            queue,
            task,
            "a.png",
            [{"path": str(out / "deep/er/abs.png")}, {"path": "x/../inside.png"}],
        )
    )["outputs"]
    assert [m["path"] for m in made] == ["deep/er/abs.png", "inside.png"]


# -- bad input fails at once, the worker goes on ------------------------------------------


def bad_sources(inbox: Path) -> dict[str, tuple[str, str]]:
    """name -> (source, a fragment of the expected error message)."""
    (inbox / "bomb.png").write_bytes(crafted_png(100_000, 100_000))
    # Above Pillow's own warning threshold: pytest makes that warning an error.
    (inbox / "big.png").write_bytes(crafted_png(10_000, 10_000))
    (inbox / "wide.png").write_bytes(crafted_png(20_000, 3_000))  # only max_pixels stops it
    one_huge = png_chunk(b"zTXt", b"k\0\0" + zlib.compress(b"a" * (8 * 2**20)))
    (inbox / "ztxt-huge.png").write_bytes(crafted_png(10, 10, one_huge))
    many = b"".join(
        png_chunk(b"zTXt", b"k%d\0\0" % i + zlib.compress(b"a" * (2**20 - 64))) for i in range(70)
    )
    (inbox / "ztxt-many.png").write_bytes(crafted_png(10, 10, many))
    whole = io.BytesIO()
    noise((300, 200)).save(whole, "JPEG")
    (inbox / "truncated.jpg").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    (inbox / "notes.jpg").write_text("these are not the pixels you are looking for\n")
    save(halves(), inbox / "old.bmp", "BMP")
    (inbox / "huge.jpg").write_bytes(whole.getvalue() + b"\0" * 2_000_000)
    (inbox / "folder.jpg").mkdir()
    return {
        "bomb": ("bomb.png", "too many pixels"),
        "pillow warning": ("big.png", "too many pixels"),
        "max_pixels": ("wide.png", "declares 20000 x 3000 = 60,000,000 pixels"),
        "zTXt chunk": ("ztxt-huge.png", "MAX_TEXT_CHUNK"),
        "zTXt chunks": ("ztxt-many.png", "MAX_TEXT_MEMORY"),
        "truncated": ("truncated.jpg", "truncated"),
        "text": ("notes.jpg", "is not an image in an allowed format (JPEG, PNG, WEBP, GIF)"),
        "bmp": ("old.bmp", "is not an image in an allowed format"),
        "bytes": ("huge.jpg", "more than max_input_bytes (1,000,000)"),
        "missing": ("nowhere.jpg", "was not found"),
        "folder": ("folder.jpg", "is not a regular file"),
    }


def test_bad_images_fail_at_once_with_a_clear_message(
    queue: DurableQueue, inbox: Path, out: Path
) -> None:
    task = image.install(
        queue,
        {
            "input_dirs": [str(inbox)],
            "output_dir": str(out),
            "max_input_bytes": 1_000_000,
            "max_attempts": 3,
        },
    )
    cases = bad_sources(inbox)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name, (source, expected) in cases.items():
        started = time.monotonic()
        message = failure_of(run(queue, task, source, [{"path": f"{name}.png"}]))
        assert expected in message, (name, message)
        assert repr(source) in message
        assert time.monotonic() - started < 2, name
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown * (1 if sys.platform == "darwin" else 1024) < 300 * 2**20
    assert files_in(out) == []
    save(noise((30, 30)), inbox / "good.jpg", "JPEG")
    result_of(run(queue, task, "good.jpg", [{"path": "good.png"}]))


def test_a_worker_pool_survives_bad_images(queue: DurableQueue, inbox: Path, out: Path) -> None:
    task = image.install(
        queue, {"input_dirs": [str(inbox)], "output_dir": str(out), "max_input_bytes": 1_000_000}
    )
    cases = bad_sources(inbox)
    save(noise((300, 200)), inbox / "good.jpg", "JPEG")
    pool = queue.start_workers(concurrency=2)
    try:
        bad = {
            name: task.enqueue(source, [{"path": f"{name}.png"}]).id
            for name, (source, _) in cases.items()
        }
        good = [task.enqueue("good.jpg", image.sizes(f"good{n}", [50, 100])).id for n in range(4)]
        eventually(lambda: all(queue.get(i).status.is_final for i in [*bad.values(), *good]))
    finally:
        pool.stop()
    for name, job_id in bad.items():
        assert cases[name][1] in failure_of(queue.get(job_id)), name
    for job_id in good:
        assert [m["width"] for m in result_of(queue.get(job_id))["outputs"]] == [50, 100]
    assert len(files_in(out)) == 8


def test_our_own_max_pixels_is_checked_before_decoding(
    queue: DurableQueue, inbox: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = image.install(
        queue, {"input_dirs": [str(inbox)], "output_dir": str(out), "max_pixels": 10_000}
    )
    save(noise((200, 200)), inbox / "photo.png", "PNG")
    loads: list[int] = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: loads.append(1) or real_load(self))
    message = failure_of(run(queue, task, "photo.png", [{"path": "x.png"}]))
    assert "declares 200 x 200 = 40,000 pixels, more than max_pixels (10,000)" in message
    assert loads == []
    message = failure_of(
        run(queue, task, "photo.png", [{"path": "x.png", "thumbnail": [200, 200]}])
    )
    assert "outputs[0] asks for 40,000 pixels, more than max_pixels (10,000)" in message


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"path": "a.png", "colour": "red"}, "outputs[0] has unknown key(s) 'colour'"),
        (
            {"path": "a.png", "resize": {"width": 0, "height": 10}},
            "outputs[0].resize.width must be a whole number from 1 to 65535, got 0",
        ),
        (
            {"path": "a.png", "resize": {"width": 10, "height": 10, "mode": "stretch"}},
            "outputs[0].resize.mode must be 'fit' or 'fill'",
        ),
        (
            {"path": "a.png", "resize": {"width": 10, "height": 10, "crop": 1}},
            "outputs[0].resize has unknown key(s) 'crop'",
        ),
        ({"path": "a.png", "thumbnail": [10]}, "outputs[0].thumbnail must be [width, height]"),
        (
            {"path": "a.png", "thumbnail": [10, 10], "resize": {"width": 5, "height": 5}},
            "both resize and thumbnail",
        ),
        (
            {"path": "a.png", "crop": {"left": 0, "top": 0, "width": 5}},
            "outputs[0].crop.height must be a whole number",
        ),
        ({"path": "a.png", "quality": 101}, "outputs[0].quality must be a whole number from 1"),
        ({"path": "a.png", "quality": True}, "outputs[0].quality"),
        ({"path": "a.png", "optimize": "yes"}, "outputs[0].optimize must be true or false"),
        ({"path": "a.bmp"}, "outputs[0].path 'a.bmp' must end in .jpg, .jpeg, .png or .webp"),
        ({"path": "a.png", "format": "gif"}, "outputs[0].format must be 'jpeg', 'png' or 'webp'"),
        (
            {"path": "a.png", "format": "jpeg"},
            "outputs[0].path 'a.png' must end in .jpg or .jpeg to be written as outputs[0].format",
        ),
        ({"path": "dir/"}, "outputs[0].path must name a file"),
        ({"path": ""}, "outputs[0].path must be a non-empty file path"),
        (
            {"path": "a.png", "crop": {"left": 30, "top": 0, "width": 20, "height": 5}},
            "outputs[0].crop (30, 0, 20 x 5) reaches outside the image (40 x 20)",
        ),
        ("a.png", "outputs[0] must be an object"),
    ],
)
def test_bad_output_specs_fail_naming_the_field(
    queue: DurableQueue, task: ImageTask, inbox: Path, out: Path, spec: Any, fragment: str
) -> None:
    save(halves(), inbox / "a.png", "PNG")
    # The first output is fine: it is not written either, as every spec is checked first.
    message = failure_of(run(queue, task, "a.png", [{"path": "good.png"}, spec]))
    assert fragment.replace("outputs[0]", "outputs[1]") in message
    assert files_in(out) == []


def test_bad_output_lists_fail(queue: DurableQueue, task: ImageTask, inbox: Path) -> None:
    save(halves(), inbox / "a.png", "PNG")
    assert "outputs must be a non-empty list" in failure_of(run(queue, task, "a.png", []))
    twice = [{"path": "same.png"}, {"path": "./same.png"}]
    message = failure_of(run(queue, task, "a.png", twice))
    assert "outputs[0].path and outputs[1].path name the same file" in message
    eleven = image.sizes("t", range(1, 12))
    assert "11 outputs asked, at most 10" in failure_of(run(queue, task, "a.png", eleven))


# -- writing ------------------------------------------------------------------------------


def test_an_encoding_error_leaves_no_file(
    queue: DurableQueue, task: ImageTask, inbox: Path, out: Path
) -> None:
    save(halves(), inbox / "a.png", "PNG")
    too_wide = {"path": "sub/wide.webp", "resize": {"width": 20_000, "height": 1, "mode": "fill"}}
    message = failure_of(run(queue, task, "a.png", [{"path": "sub/first.png"}, too_wide]))
    assert "outputs[1]: cannot encode 'sub/wide.webp' as WEBP" in message
    assert "16383" in message  # Pillow's own words
    # The first output was written before the second failed; the failed one left nothing.
    assert files_in(out) == ["sub/first.png"]


def test_a_failed_write_is_retried_and_never_leaves_half_a_file(
    queue: DurableQueue,
    task: ImageTask,
    inbox: Path,
    out: Path,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    save(noise((200, 200)), inbox / "a.png", "PNG")
    (out / "thumbs").mkdir(parents=True)
    (out / "thumbs" / "a.jpg").write_bytes(b"the previous version")
    written: list[int] = []

    class DiskFull:
        """The temporary file, on a disk that fills up halfway through the image."""

        def __init__(self, file: Any) -> None:
            self.file = file

        def write(self, data: bytes) -> int:
            written.append(self.file.write(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self) -> None:
            self.file.flush()

    real_init = image.files._Sink.__init__
    monkeypatch.setattr(
        image.files._Sink, "__init__", lambda self, file: real_init(self, DiskFull(file))
    )
    job = run(queue, task, "a.png", [{"path": "thumbs/a.jpg", "quality": 95}])
    assert written[0] > 100  # some bytes reached the temporary file before the disk filled
    assert (job.status, job.attempts) == (JobStatus.PENDING, 1), job.error
    assert job.error is not None
    assert job.error.type == "TransientError"
    assert "cannot write outputs[0].path 'thumbs/a.jpg': No space left on device" in (
        job.error.message
    )
    assert files_in(out) == ["thumbs/a.jpg"]  # no temporary file
    assert (out / "thumbs" / "a.jpg").read_bytes() == b"the previous version"

    monkeypatch.undo()
    clock.advance(3600)
    queue.run_until_empty()
    done = queue.get(job.id)
    assert result_of(done)["outputs"][0]["width"] == 200
    assert done.attempts == 2
    assert opened(out / "thumbs" / "a.jpg").format == "JPEG"
    assert files_in(out) == ["thumbs/a.jpg"]


# -- settings and installation -------------------------------------------------------------


def test_settings_defaults_and_validation(tmp_path: Path) -> None:
    settings = image.ImageSettings(input_dirs=(str(tmp_path),), output_dir=tmp_path)
    assert (
        settings.max_pixels,
        settings.max_input_bytes,
        settings.quality,
        settings.max_attempts,
        settings.max_outputs,
        settings.max_output_pixels,
    ) == (50_000_000, 50 * 2**20, 85, 2, 10, 100_000_000)
    assert settings.input_formats == ("JPEG", "PNG", "WEBP", "GIF")
    assert settings.output_formats == ("JPEG", "PNG", "WEBP")
    assert settings.output_dir == str(tmp_path)
    loose = image.ImageSettings.from_mapping(
        {
            "input_dirs": "/srv/uploads",
            "output_dir": "/srv/media",
            "input_formats": ["jpg", "png"],
            "output_formats": ["webp"],
        }
    )
    assert loose.input_dirs == ("/srv/uploads",)
    assert (loose.input_formats, loose.output_formats) == (("JPEG", "PNG"), ("WEBP",))

    with pytest.raises(ConfigurationError, match=r"unknown JOBQ_IMAGE setting\(s\) 'qualty'"):
        image.ImageSettings.from_mapping({"input_dirs": ["a"], "output_dir": "b", "qualty": 50})
    with pytest.raises(ConfigurationError, match="output_dir"):
        image.ImageSettings.from_mapping({"input_dirs": ["a"]})
    for bad, fragment in [
        ({"quality": 0}, "quality must be a whole number from 1 to 100"),
        ({"max_pixels": 1.5}, "max_pixels must be a whole number"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_output_pixels": 0}, "max_output_pixels must be a whole"),
        ({"input_dirs": []}, "input_dirs must name at least one folder"),
        ({"output_formats": ["gif"]}, "output_formats may only hold"),
        ({"input_formats": "jpeg"}, "input_formats must be a list"),
    ]:
        with pytest.raises(ConfigurationError, match=fragment):
            image.ImageSettings.from_mapping({"input_dirs": ["a"], "output_dir": "b", **bad})


def test_install(queue: DurableQueue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = image.ImageSettings(input_dirs=("a",), output_dir="b", max_attempts=4)
    task = image.install(queue, settings)
    assert (task.name, task.max_attempts) == ("jobq.image.process", 4)
    assert queue.extensions[image.EXTENSION_KEY] is settings
    assert (
        image.install(queue, {"input_dirs": ["a"], "output_dir": "b", "max_attempts": 4})
        is queue.tasks[image.TASK_NAME]
    )
    image.install(queue, {"input_dirs": ["a"], "output_dir": "c"})  # replaces the settings
    assert queue.extensions[image.EXTENSION_KEY].output_dir == "c"
    with pytest.raises(TypeError, match=r"cannot enqueue jobq\.image\.process"):
        task.enqueue(source="a.png", outputs=[])  # type: ignore[call-arg]

    other = DurableQueue(tmp_path / "other.db")
    try:
        with pytest.raises(ConfigurationError, match="MAX_IMAGE_PIXELS"):
            image.install(other, {"input_dirs": ["a"], "output_dir": "b", "max_pixels": 10**9})
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2 * 10**9)
        assert (
            image.install(other, {"input_dirs": ["a"], "output_dir": "b", "max_pixels": 10**9}).name
            == image.TASK_NAME
        )
    finally:
        other.close()


def test_the_task_on_a_queue_without_install_fails_clearly(queue: DurableQueue) -> None:
    task = queue.task(name=image.TASK_NAME)(image.process_image)
    job = run(queue, task, "a.png", [{"path": "b.png"}])
    message = failure_of(job)
    assert "jobq.image handler is not installed on this queue" in message
    assert "jobq.handlers.image.install(queue, settings)" in message
