"""Every python, sh and bash block of README.md and docs/**/*.md runs, page by page.

One test per page (its id is the page's path): run one page with
``.venv/bin/python -m pytest tests/docs -k email`` (any part of the path).
The conventions (markers, fixtures, one folder and one interpreter per page)
are in tests/docs/pages.py and tests/docs/fixtures.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.pages import page_paths, read_page
from tests.docs.runner import PAGE_TIMEOUT, PageFailed, run_page


@pytest.mark.timeout(PAGE_TIMEOUT + 60)
@pytest.mark.parametrize("path", page_paths())
def test_page_snippets_run(path: str, tmp_path: Path) -> None:
    page = read_page(path)
    if not any(block.runs for block in page.blocks):
        pytest.skip(f"{path} has no python, sh or bash block to run")
    try:
        run_page(page, tmp_path)
    except PageFailed as failed:
        message = str(failed)
    else:
        return
    pytest.fail(message, pytrace=False)  # outside the except: no chained report
