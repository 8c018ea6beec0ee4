"""Real servers and files that a page's blocks may ask for with
``<!-- snippet: fixtures smtp webhook images postgres redis -->``.

Each fixture starts once per page (when a block first names it) and rewrites
its placeholder literals in that block and every later block of the page:

- smtp: an aiosmtpd server on 127.0.0.1 that accepts any login without TLS;
  ``smtp.example.com`` -> ``127.0.0.1``, ``"port": 587`` -> its port,
  ``"security": "starttls"`` -> ``"security": "none"``.
- webhook: an HTTP receiver on 127.0.0.1 answering 200 to every POST;
  ``https://partner.example.com/hooks`` -> its URL, and every Python process of
  the page lets the webhook handler reach 127.0.0.1 (``allow_hosts``).
- images: real images ``uploads/42.jpg`` and ``uploads/avatar.png`` (Pillow), and
  an empty ``media/`` folder, in the page's folder.
- postgres: ``postgresql://app@db.internal/app`` -> a new schema on the server
  named by ``JOBQ_TEST_POSTGRES_URL``, dropped at the page's end (skipped
  without one, failed under ``JOBQ_REQUIRE_POSTGRES=1``).
- redis: ``redis://redis.internal:6379/0`` -> a redis-server of the page's own,
  configured as docs/guide/redis.md advises (``appendonly yes``, ``appendfsync
  always``, ``noeviction``), so its pages open queues without a durability
  warning; stopped at the page's end (skipped where the tests have no Redis,
  failed under ``JOBQ_REQUIRE_REDIS=1``).

The block that names a fixture must hold its first placeholder (the one its
``REQUIRED`` entry names), so a declared fixture always does something.
"""

from __future__ import annotations

import contextlib
import http.server
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.helpers import drop_postgres_schema, postgres_schema_url, require_redis

HERE = Path(__file__).resolve().parent
SITE_HOOKS = HERE / "site_hooks"
"""A folder put on PYTHONPATH when the webhook fixture runs: its sitecustomize
lets the webhook handler reach the loopback receiver in every process."""

REQUIRED = {
    "smtp": ("smtp.example.com",),
    "webhook": ("https://partner.example.com/hooks",),
    "images": ("42.jpg", "avatar.png"),
    "postgres": ("postgresql://app@db.internal/app",),
    "redis": ("redis://redis.internal:6379/0",),
}
"""For each fixture: the block naming it must hold at least one of these."""


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.received.append((self.path, self.rfile.read(length)))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class PageFixtures:
    """The fixtures started for one page; :meth:`close` stops them all."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.replacements: dict[str, str] = {}
        self.env: dict[str, str] = {}
        self.started: list[str] = []
        self._stack = contextlib.ExitStack()

    def start(self, name: str) -> None:
        if name in self.started:
            return
        getattr(self, f"_start_{name}")()
        self.started.append(name)

    def rewrite(self, text: str) -> str:
        for placeholder, value in self.replacements.items():
            text = text.replace(placeholder, value)
        return text

    def close(self) -> None:
        self._stack.close()

    def _start_smtp(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        class Accept:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                return "250 OK"

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        controller = Controller(
            Accept(),
            hostname="127.0.0.1",
            port=port,
            authenticator=lambda *args: AuthResult(success=True),
            auth_require_tls=False,
        )
        controller.start()
        self._stack.callback(controller.stop)
        self.replacements.update(
            {
                "smtp.example.com": "127.0.0.1",
                '"port": 587': f'"port": {port}',
                '"security": "starttls"': '"security": "none"',
            }
        )

    def _start_webhook(self) -> None:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
        server.received = []  # type: ignore[attr-defined]
        thread = threading.Thread(target=server.serve_forever, name="docs-webhook", daemon=True)
        thread.start()
        self._stack.callback(server.server_close)
        self._stack.callback(server.shutdown)
        port = server.server_address[1]
        self.replacements["https://partner.example.com/hooks"] = f"http://127.0.0.1:{port}/hooks"
        self.env["JOBQ_DOCS_WEBHOOK_ALLOW"] = "127.0.0.1"

    def _start_images(self) -> None:
        from PIL import Image

        uploads = self.folder / "uploads"
        uploads.mkdir(exist_ok=True)
        (self.folder / "media").mkdir(exist_ok=True)
        photo = Image.new("RGB", (640, 480))
        for x in range(0, 640, 40):
            photo.paste((x % 255, 120, 255 - x % 255), (x, 0, x + 40, 480))
        photo.save(uploads / "42.jpg", quality=85)
        Image.new("RGBA", (256, 256), (30, 140, 200, 255)).save(uploads / "avatar.png")

    def _start_postgres(self) -> None:
        url = postgres_schema_url()  # skips, or fails under JOBQ_REQUIRE_POSTGRES=1
        self._stack.callback(drop_postgres_schema, url)
        self.replacements["postgresql://app@db.internal/app"] = url

    def _start_redis(self) -> None:
        require_redis()  # skips, or fails under JOBQ_REQUIRE_REDIS=1
        program = shutil.which("redis-server")
        if program is None:  # a remote test server: the page gets a server of its own
            raise RuntimeError("the docs' redis fixture needs redis-server installed")
        folder = tempfile.mkdtemp(prefix="jobq-docs-redis-")
        self._stack.callback(shutil.rmtree, folder, ignore_errors=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        options = ["--bind", "127.0.0.1", "--port", str(port), "--dir", folder, "--save", ""]
        options += ["--appendonly", "yes", "--appendfsync", "always"]
        options += ["--maxmemory-policy", "noeviction", "--logfile", "redis.log"]
        server = subprocess.Popen([program, *options], cwd=folder, stdout=subprocess.DEVNULL)
        self._stack.callback(server.wait, 10)
        self._stack.callback(server.terminate)
        deadline = time.monotonic() + 10
        while not _answers_ping(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start (port {port}, folder {folder})")
            time.sleep(0.02)  # bounded wait for the server to listen
        self.replacements["redis://redis.internal:6379/0"] = f"redis://127.0.0.1:{port}/0"


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def page_fixtures(folder: Path) -> Iterator[PageFixtures]:
    fixtures = PageFixtures(folder)
    try:
        yield fixtures
    finally:
        fixtures.close()
