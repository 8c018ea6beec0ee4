"""Step 1 of the tutorial (docs/tutorial.md): a Flask app that does every slow thing in the request.

``POST /signup`` sends a welcome email over SMTP, ``POST /users/<id>/avatar``
resizes the uploaded picture with Pillow, ``POST /enrich`` asks a rate-limited
partner API about each item, one after the other. Each answer waits for all of it.

    cd examples/tutorial
    python ../fake_api.py --port 8001 &       # the partner API (or in another terminal)
    flask --app step1_blocking run            # http://127.0.0.1:5000
"""

from __future__ import annotations

import json
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Flask, current_app, request
from PIL import Image
from werkzeug.datastructures import FileStorage

THUMBNAIL_SIZES = {"small": 64, "medium": 256, "large": 1024}  # square boxes, in pixels
SENDER = "Example <welcome@example.com>"


def send_welcome_email(address: str) -> None:
    """Send the welcome email through the SMTP server of ``app.config["SMTP"]``."""
    server = current_app.config["SMTP"]
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = address
    message["Subject"] = "Welcome to Example"
    message.set_content("Thanks for signing up!")
    with smtplib.SMTP(server["host"], server["port"], timeout=30) as smtp:
        if server["security"] == "starttls":
            smtp.starttls()
        smtp.send_message(message)


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
    send_welcome_email(address)
    return {"email": address}, 201


def store_avatar(user_id: int, upload: FileStorage) -> tuple[dict[str, Any], int]:
    folder = Path(current_app.config["AVATAR_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"{user_id}.upload"
    upload.save(source)
    return {"thumbnails": make_thumbnails(source)}, 201


def enrich(items: list[str]) -> list[dict[str, Any]]:
    api_url = current_app.config["PARTNER_API_URL"]
    return [fetch_item(api_url, item) for item in items]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SMTP={"host": "localhost", "port": 25, "security": "none"},
        PARTNER_API_URL="http://127.0.0.1:8001",
        AVATAR_FOLDER=str(Path(app.instance_path) / "avatars"),
    )
    app.config.update(config or {})

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
