"""Step 4 of the tutorial (docs/tutorial.md): the welcome email is a durable job.

As step 3, except that ``POST /signup`` stores a job for jobq's email handler
and answers 202 at once. The jobs live in ``instance/jobq.db``; the worker
threads that flask_jobq starts in each serving process send them, and try again
with backoff when the SMTP server answers 4xx or cannot be reached. The
monitor is at ``/jobq`` (this machine only) and ``flask jobq`` works on the queue.

    cd examples/tutorial
    python ../fake_api.py --port 8001 &       # the partner API (or in another terminal)
    flask --app step4_durable run             # http://127.0.0.1:5000
    flask --app step4_durable jobq stats      # the queue's counts
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Flask, current_app, request
from PIL import Image
from werkzeug.datastructures import FileStorage

import jobq
from flask_jobq import JobQ, is_local_request
from flask_jobq.handlers import send_email

THUMBNAIL_SIZES = {"small": 64, "medium": 256, "large": 1024}  # square boxes, in pixels
SENDER = "Example <welcome@example.com>"

logger = logging.getLogger(__name__)
jobq_ext = JobQ()


def make_thumbnails(source: Path) -> list[str]:
    """Write the picture at ``source`` at each of THUMBNAIL_SIZES, as JPEG files next to it."""
    written = []
    with Image.open(source) as picture:
        picture = picture.convert("RGB")
        for name, box in THUMBNAIL_SIZES.items():
            thumbnail = picture.copy()
            thumbnail.thumbnail((box, box))
            target = source.with_name(f"{source.stem}-{name}.jpg")
            thumbnail.save(target, "JPEG", quality=85)
            written.append(target.name)
    return written


def fetch_item(api_url: str, item: str) -> dict[str, Any]:
    """Ask the partner API about ``item``; when it answers 429, wait as it says and ask again."""
    while True:
        try:
            url = f"{api_url}/enrich?item={quote(item)}"
            with urllib.request.urlopen(url, timeout=10) as response:
                return dict(json.load(response))
        except urllib.error.HTTPError as error:
            with error:
                if error.code != 429:
                    raise
                time.sleep(float(error.headers.get("Retry-After", "1")))


def welcome(address: str) -> tuple[dict[str, Any], int]:
    # Stored in the database before this returns; a worker thread sends it.
    job = send_email.enqueue(
        to=address, subject="Welcome to Example", text="Thanks for signing up!"
    )
    return {"email": address, "job": job.id}, 202


def store_avatar(user_id: int, upload: FileStorage) -> tuple[dict[str, Any], int]:
    folder = Path(current_app.config["AVATAR_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"{user_id}.upload"
    upload.save(source)  # the upload's stream closes with the request: pass the saved file
    thumbnails = jobq.executor("thumbnails", max_workers=3)
    thumbnails.submit(make_thumbnails, source).add_done_callback(log_failure)
    return {"thumbnails": [f"{user_id}-{name}.jpg" for name in THUMBNAIL_SIZES]}, 202


def log_failure(future: Future[list[str]]) -> None:
    """Log the error of a background task: nobody waits for its future to raise it."""
    if not future.cancelled() and future.exception() is not None:
        logger.error("making thumbnails failed", exc_info=future.exception())


def enrich(items: list[str]) -> list[dict[str, Any]]:
    api_url = current_app.config["PARTNER_API_URL"]
    # One executor for the whole process, shared by every request thread:
    # at most 3 calls at once, never more than 5 starts in any 1.1 seconds.
    partner_api = jobq.executor("partner-api", max_workers=3, rate=5, per=1.1, strict=True)
    futures = [partner_api.submit(fetch_item, api_url, item) for item in items]
    return [future.result(timeout=30) for future in futures]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SMTP={"host": "localhost", "port": 25, "security": "none"},
        PARTNER_API_URL="http://127.0.0.1:8001",
        AVATAR_FOLDER=str(Path(app.instance_path) / "avatars"),
        JOBQ_MONITOR_AUTH=is_local_request,  # the monitor at /jobq: this machine only
    )
    app.config.update(config or {})
    # jobq's email handler sends through the same server, as SENDER unless told otherwise.
    app.config.setdefault("JOBQ_EMAIL", {**app.config["SMTP"], "default_sender": SENDER})
    jobq_ext.init_app(app)

    @app.post("/signup")
    def signup() -> tuple[dict[str, Any], int]:
        return welcome(request.form["email"])

    @app.post("/users/<int:user_id>/avatar")
    def avatar(user_id: int) -> tuple[dict[str, Any], int]:
        return store_avatar(user_id, request.files["picture"])

    @app.post("/enrich")
    def enrich_view() -> dict[str, Any]:
        return {"items": enrich(request.get_json()["items"])}

    return app
