"""Real-browser fixtures: one headless Chromium (the distribution's, driven by
Playwright) for the session, and for each test the app served by a real HTTP server
on 127.0.0.1 with a real SQLite file and real worker threads.

Without ``/usr/bin/chromium`` (or Playwright) the tests skip and say why; with
``JOBQ_REQUIRE_BROWSER=1`` (set by ``.ci/run``) they fail instead. Playwright never
downloads a browser here. Screenshots go to ``$JOBQ_TEST_ARTIFACTS`` (default
``build/test-artifacts/``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from flask_jobq import state_for
from tests.browser._app import make_app, release

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Reported as console errors, so a page that breaks its own policy fails its test.
REPORT_CSP = """
document.addEventListener("securitypolicyviolation", function (event) {
  console.error("CSP violation: " + event.violatedDirective + " " + event.blockedURI);
});
"""


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"no browser at {CHROMIUM} (Debian: apt-get install chromium chromium-driver)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    problem = _missing()
    if problem is not None:
        if os.environ.get("JOBQ_REQUIRE_BROWSER") == "1":
            pytest.fail(f"JOBQ_REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@dataclass
class Served:
    """The app under test and the URL its server answers at."""

    app: Flask
    url: str
    folder: Path
    messages: list[str] = field(default_factory=list)

    @property
    def queue(self) -> Any:
        return state_for(self.app).queue


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setenv("JOBQ_BROWSER_DIR", str(tmp_path))
    release.clear()
    app = make_app(tmp_path / "jobs.db")
    state = state_for(app)
    state.start_workers()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="browser-test-server")
    thread.start()
    try:
        yield Served(app, f"http://127.0.0.1:{server.server_port}", tmp_path)
    finally:
        release.set()
        server.shutdown()
        thread.join(10)
        server.server_close()
        state.close(timeout=10)


@pytest.fixture
def page(browser: Any, served: Served, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser page (its own cookies) whose console errors, failed requests
    and CSP violations fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(REPORT_CSP)
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    problems = served.messages
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type in ("error", "warning")
            else None
        ),
    )
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    yield opened
    context.close()
    expected = getattr(request.node, "expected_console", ())
    unexpected = [m for m in problems if not any(text in m for text in expected)]
    assert unexpected == []
