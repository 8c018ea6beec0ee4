"""Helpers of the browser tests: screenshots as test artefacts, and waits on the
page that fail with what the page showed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.helpers import ROOT

ARTIFACTS = Path(os.environ.get("JOBQ_TEST_ARTIFACTS") or ROOT / "build" / "test-artifacts")
"""Where screenshots go: ``$JOBQ_TEST_ARTIFACTS``, default ``build/test-artifacts/``."""


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot of ``page`` as ``dashboard-<name>.png``; its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"dashboard-{name}.png"
    page.evaluate("window.scrollTo(0, 0)")  # the sticky bar at the top, where it belongs
    page.screenshot(path=str(path), full_page=True)
    return path
