"""examples/uploads/: thumbnails of uploaded images, at most 3 resizes at once.

Real images made with Pillow here, real Pillow decoding and encoding in the app,
real threads in jobq's executor: no mocks.
"""

from __future__ import annotations

import importlib.util
import io
import os
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import EpsImagePlugin, Image, ImageDraw

import jobq
from tests.helpers import ROOT

SCRIPT = ROOT / "examples" / "uploads" / "app.py"
SUBPROCESS_TIMEOUT = 60.0
RED = (220, 30, 30)
NOT_ALLOWED = (
    "not a readable image: the file is not an image in an allowed format "
    "(JPEG, PNG, WEBP, GIF), or its header is corrupt"
)


def load_example() -> ModuleType:
    name = "jobq_example_uploads"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def uploads(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = load_example()
    # create_app() lowers Pillow's process-wide limit: give the next test its own back.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    module.RESIZES.reset()
    return module


@pytest.fixture
def app(uploads: ModuleType, tmp_path: Path) -> Flask:
    # The autouse fixture in conftest.py shuts the named executor down after each test.
    application: Flask = uploads.create_app(instance_path=str(tmp_path / "instance"))
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def ghostscript_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in ``gs`` first on PATH that writes each run's arguments to the returned
    file, which exists only if Pillow started "Ghostscript"."""
    folder = tmp_path / "bin"
    folder.mkdir()
    runs = tmp_path / "gs-runs.log"
    (folder / "gs").write_text(f'#!/bin/sh\necho "$@" >> "{runs}"\n')
    (folder / "gs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    # Pillow remembers whether it found gs: make it look again, and forget it afterwards.
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)
    return runs


# -- images made here -----------------------------------------------------------------


def encode(image: Image.Image, format_: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format_, **options)
    image.close()
    return buffer.getvalue()


def picture(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """A gradient with a red band along the top edge, to see which way is up."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    ImageDraw.Draw(image).rectangle((0, 0, width, height // 6), fill=RED)
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize((width, height)))
    return image


def sideways_photo() -> bytes:
    """Stored 400 x 800 (tall); EXIF orientation 6 says: turn 90 degrees clockwise."""
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    exif[0x010F] = "Test Camera Co."  # Make
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}  # GPS: the metadata people leak
    return encode(picture(400, 800), "JPEG", quality=90, exif=exif, comment=b"secret comment")


def is_red(pixel: tuple[int, ...]) -> bool:
    return pixel[0] > 180 and pixel[1] < 80 and pixel[2] < 80


def noisy_jpeg() -> bytes:
    return encode(Image.effect_noise((600, 400), 60).convert("RGB"), "JPEG", quality=95)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height``: a decompression bomb."""
    data = bytearray(encode(Image.new("1", (1, 1)), "PNG"))
    header = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(data)


VARIOUS: list[tuple[str, Callable[[], bytes]]] = [
    ("photo.jpg", lambda: encode(picture(1200, 900), "JPEG")),
    ("alpha.png", lambda: encode(picture(900, 600, "RGBA"), "PNG")),
    ("picture.webp", lambda: encode(picture(700, 1000), "WEBP")),
    ("palette.gif", lambda: encode(picture(500, 500).convert("P"), "GIF")),
    ("gray.jpg", lambda: encode(picture(1000, 500).convert("L"), "JPEG")),
    ("tiny.png", lambda: encode(picture(60, 40), "PNG")),
    ("large.jpg", lambda: encode(picture(3000, 1800), "JPEG")),  # decoded at 1/2 scale
]
SOURCES = [
    ("JPEG", 1200, 900),
    ("PNG", 900, 600),
    ("WEBP", 700, 1000),
    ("GIF", 500, 500),
    ("JPEG", 1000, 500),
    ("PNG", 60, 40),
    ("JPEG", 3000, 1800),
]


def post(client: FlaskClient, uploads: ModuleType, files: list[tuple[str, bytes]]) -> Any:
    boundary, body = uploads.multipart_body(files)
    return client.post(
        "/upload", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def fetch_image(client: FlaskClient, url: str) -> Image.Image:
    response = client.get(url)
    assert response.status_code == 200
    data = response.data
    response.close()
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# -- the happy path ---------------------------------------------------------------------


def test_thumbnails_of_every_format(client: FlaskClient, uploads: ModuleType) -> None:
    files = [(name, make()) for name, make in VARIOUS]
    reply = post(client, uploads, files)
    assert reply.status_code == 200, reply.get_json()
    body = reply.get_json()
    assert (body["files"], body["ok"], body["failed"]) == (7, 7, 0)
    assert [result["filename"] for result in body["results"]] == [name for name, _ in files]
    assert [
        (result["source"]["format"], result["source"]["width"], result["source"]["height"])
        for result in body["results"]
    ] == SOURCES
    for result in body["results"]:
        thumbnails = result["thumbnails"]
        assert [thumb["size"] for thumb in thumbnails] == ["small", "medium", "large"]
        source = result["source"]
        for thumb in thumbnails:
            box = uploads.SIZES[thumb["size"]]
            with fetch_image(client, thumb["url"]) as image:
                assert image.size == (thumb["width"], thumb["height"])
                assert max(image.size) == min(box, max(source["width"], source["height"]))
                # aspect ratio kept (within rounding)
                assert abs(image.width / image.height - source["width"] / source["height"]) < 0.05
                transparent = result["filename"] == "alpha.png"
                assert image.format == ("WEBP" if transparent else "JPEG") == thumb["format"]
                assert image.mode == ("RGBA" if transparent else "RGB")
    assert 1 <= body["peak_concurrent_resizes"] <= 3
    assert body["peak_concurrent_resizes_process"] <= 3


def test_exif_orientation_is_applied_and_metadata_stripped(
    client: FlaskClient, uploads: ModuleType
) -> None:
    reply = post(client, uploads, [("IMG_0001.JPG", sideways_photo())])
    assert reply.status_code == 200
    result = reply.get_json()["results"][0]
    assert result["source"] == {"format": "JPEG", "width": 800, "height": 400}  # upright: wide
    sizes = [(thumb["width"], thumb["height"]) for thumb in result["thumbnails"]]
    assert sizes == [(128, 64), (320, 160), (800, 400)]
    for thumb in result["thumbnails"]:
        with fetch_image(client, thumb["url"]) as image:
            assert image.width > image.height
            assert not image.getexif()
            for key in ("exif", "xmp", "icc_profile", "comment"):
                assert key not in image.info
            # The stored top edge (red) is now on the right.
            right = image.getpixel((image.width - 2, image.height // 2))
            left = image.getpixel((1, image.height // 2))
            assert isinstance(right, tuple)
            assert isinstance(left, tuple)
            assert is_red(right), right
            assert not is_red(left), left


def test_twenty_images_at_most_three_at_a_time_across_requests(
    app: Flask, uploads: ModuleType
) -> None:
    files = [(f"{number}-{name}", make()) for number, (name, make) in enumerate(VARIOUS * 2)]
    replies: list[Any] = []

    def send(chunk: list[tuple[str, bytes]]) -> None:
        replies.append(post(app.test_client(), uploads, chunk))

    threads = [threading.Thread(target=send, args=(files[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(reply.status_code for reply in replies) == [200] * 4
    assert sum(reply.get_json()["ok"] for reply in replies) == len(files)
    assert all(reply.get_json()["peak_concurrent_resizes"] <= 3 for reply in replies)
    assert 1 < uploads.RESIZES.peak <= 3
    pool = jobq.executor(uploads.EXECUTOR_NAME)
    assert pool is uploads.thumbnail_executor()  # one executor for every request
    assert pool.max_workers == 3


def test_the_twenty_sample_images_all_get_thumbnails(
    client: FlaskClient, uploads: ModuleType
) -> None:
    samples = uploads.sample_images()
    assert len(samples) == 20
    body = post(client, uploads, samples).get_json()
    assert body["ok"] == 20
    assert 1 < body["peak_concurrent_resizes"] <= 3


# -- bad input ------------------------------------------------------------------------


def test_unreadable_files_are_reported_while_the_others_succeed(
    client: FlaskClient, uploads: ModuleType
) -> None:
    jpeg = noisy_jpeg()
    png = encode(picture(300, 200), "PNG")
    files = [
        ("good.jpg", jpeg),
        ("notes.txt", b"just some text, not a picture\n"),
        ("truncated.jpg", jpeg[: len(jpeg) // 2]),
        ("truncated.png", png[: len(png) // 2]),
        ("corrupt.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8),
        ("empty.png", b""),
        ("bomb.png", png_claiming(30_000, 30_000)),  # 900 Mpx: Pillow raises
        ("big.png", png_claiming(7_000, 7_000)),  # 49 Mpx: Pillow only warns
        ("good.png", png),
    ]
    reply = post(client, uploads, files)
    assert reply.status_code == 200
    results = reply.get_json()["results"]
    errors = {result["filename"]: result.get("error") for result in results}
    assert errors["good.jpg"] is None
    assert errors["good.png"] is None
    for name in ("truncated.jpg", "truncated.png"):
        assert errors[name] == "not a readable image", name
    assert errors["notes.txt"] == errors["corrupt.jpg"] == NOT_ALLOWED
    assert errors["empty.png"].startswith("not a readable image")
    assert "too many pixels" in errors["bomb.png"]
    assert "too many pixels" in errors["big.png"]
    assert reply.get_json()["ok"] == 2


@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in gs is a shell script")
def test_only_the_allowed_decoders_ever_see_an_upload(
    client: FlaskClient, uploads: ModuleType, ghostscript_runs: Path
) -> None:
    # Files Pillow could decode, in formats the app does not take, all named like a JPEG.
    disguised = [
        (f"cat-{fmt.lower()}.jpg", encode(picture(40, 30), fmt))
        for fmt in ("EPS", "TIFF", "BMP", "ICO", "PCX")
    ]
    reply = post(client, uploads, [*disguised, ("good.png", encode(picture(40, 30), "PNG"))])
    assert reply.status_code == 200
    results = reply.get_json()["results"]
    assert [result.get("error") for result in results] == [NOT_ALLOWED] * 5 + [None]
    assert not ghostscript_runs.exists()  # the EPS never reached Ghostscript
    # The stand-in does run when Pillow is asked to decode that EPS, so the check is real.
    stand_in_ran = pytest.raises(OSError, match="cannot identify image file")  # no pixels
    with Image.open(io.BytesIO(disguised[0][1])) as eps, stand_in_ran:
        eps.load()
    assert ghostscript_runs.read_text().startswith("--version")


def test_a_request_with_no_readable_image_is_a_400(
    client: FlaskClient, uploads: ModuleType
) -> None:
    reply = post(client, uploads, [("a.txt", b"hello"), ("b.png", png_claiming(90_000, 90_000))])
    assert reply.status_code == 400
    body = reply.get_json()
    assert "none of the files" in body["message"]
    assert [result["error"][:20] for result in body["results"]] == ["not a readable image"] * 2


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("too many", "too many files: 21, at most 20"),
        ("none", "no files"),
        ("json", "multipart/form-data"),
        ("wrong field", "use 'images'"),
        ("empty form input", "no files"),
    ],
)
def test_bad_requests_get_a_json_400(
    client: FlaskClient, uploads: ModuleType, kind: str, message: str
) -> None:
    tiny = encode(picture(20, 20), "PNG")
    if kind == "too many":
        reply = post(client, uploads, [(f"{n}.png", tiny) for n in range(21)])
    elif kind == "none":
        reply = post(client, uploads, [])
    elif kind == "json":
        reply = client.post("/upload", json={"images": ["a.png"]})
    else:
        from werkzeug.datastructures import FileStorage
        from werkzeug.test import encode_multipart

        field, name = ("file", "a.png") if kind == "wrong field" else ("images", "")
        boundary, body = encode_multipart(
            {field: [FileStorage(io.BytesIO(tiny if name else b""), filename=name)]}
        )
        reply = client.post(
            "/upload", data=body, content_type=f"multipart/form-data; boundary={boundary}"
        )
    assert reply.status_code == 400
    assert reply.is_json
    assert message in reply.get_json()["message"]


def test_too_big_bodies_and_files(
    app: Flask, client: FlaskClient, uploads: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = noisy_jpeg()
    monkeypatch.setattr(uploads, "MAX_FILE_BYTES", len(big) - 1)
    reply = post(client, uploads, [("big.jpg", big), ("small.png", encode(picture(9, 9), "PNG"))])
    assert reply.status_code == 200
    assert reply.get_json()["results"][0]["error"].startswith("larger than")

    app.config["MAX_CONTENT_LENGTH"] = 10_000
    reply = post(client, uploads, [("big.jpg", big)])
    assert reply.status_code == 413
    assert reply.is_json
    assert reply.get_json()["error"] == "Request Entity Too Large"


def test_client_file_names_are_never_paths(
    client: FlaskClient, uploads: ModuleType, tmp_path: Path
) -> None:
    png = encode(picture(50, 50), "PNG")
    names = ["../../evil.png", "/etc/passwd", "..\\..\\win.png", "a/../../b.png", "x\x00.png"]
    reply = post(client, uploads, [(name, png) for name in names])
    assert reply.status_code == 200
    body = reply.get_json()
    assert body["ok"] == len(names)
    written = sorted(path for path in tmp_path.rglob("*") if path.is_file())
    assert len(written) == 3 * len(names)
    folder = tmp_path / "instance" / "thumbnails"
    assert all(path.parent == folder for path in written)
    assert all(uploads.THUMBNAIL_NAME.fullmatch(path.name) for path in written)  # no temp files

    for bad in ["..%2F..%2Fapp.py", "..", "x.jpg", "%2Fetc%2Fpasswd", "a" * 32 + "-small.jpg"]:
        response = client.get(f"/thumbnails/{bad}")
        assert response.status_code == 404, bad


def test_index_and_a_served_thumbnail(client: FlaskClient, uploads: ModuleType) -> None:
    index = client.get("/").get_json()
    assert "POST /upload" in index["endpoints"]
    assert "max_workers=3" in index["how"]
    result = post(client, uploads, [("p.webp", encode(picture(90, 60), "WEBP"))]).get_json()
    url = result["results"][0]["thumbnails"][0]["url"]
    served = client.get(url)
    assert served.status_code == 200
    assert served.mimetype == "image/jpeg"
    served.close()


# -- back-pressure and timeouts -----------------------------------------------------------


def test_a_full_executor_answers_503_and_submits_nothing(
    client: FlaskClient, uploads: ModuleType
) -> None:
    pool = uploads.thumbnail_executor()
    pool.pause()
    try:
        blockers = [pool.submit(int) for _ in range(uploads.MAX_QUEUED - 1)]
        png = encode(picture(20, 20), "PNG")
        reply = post(client, uploads, [("a.png", png), ("b.png", png)])
        assert reply.status_code == 503
        assert reply.headers["Retry-After"] == "5"
        assert pool.waiting == uploads.MAX_QUEUED - 1  # a.png was taken back out
    finally:
        pool.clear()
        pool.resume()
    assert all(future.cancelled() for future in blockers)


def test_a_request_waits_a_bounded_time(
    client: FlaskClient, uploads: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uploads, "WAIT_TIMEOUT", 0.2)
    pool = uploads.thumbnail_executor()
    pool.pause()
    try:
        reply = post(client, uploads, [("a.png", encode(picture(20, 20), "PNG"))])
        assert reply.status_code == 504
        assert reply.get_json()["results"][0]["error"] == "not processed within 0.2 s"
        assert pool.waiting == 0  # the request cancelled what it no longer waits for
    finally:
        pool.resume()


# -- the command line -------------------------------------------------------------------


def test_check_exits_zero() -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "all checks passed" in completed.stdout
    assert completed.stderr == ""


def test_make_samples_writes_twenty_images(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--make-samples", str(tmp_path), "--port", "5123"],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    paths = sorted(tmp_path.iterdir())
    assert len(paths) == 20
    formats = set()
    for path in paths:
        with Image.open(path) as image:
            formats.add(image.format)
    assert formats == {"JPEG", "PNG", "WEBP", "GIF"}
    assert f"-F images=@{paths[0]}" in completed.stdout
    assert "http://127.0.0.1:5123/upload" in completed.stdout
