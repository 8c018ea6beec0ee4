"""mkdocs hook: fill the reference pages from the code when the site is built.

A line ``<!-- reference: NAME -->`` in a page is replaced by what NAME renders
(:func:`renderers`), so the references follow the code: the command line from its
parsers, the configuration from ``init_app`` and the signatures, the monitor from
its served OpenAPI document, the API's signals and any public name a page has not
placed. ``tests/docs/test_reference_complete.py`` renders the pages the same way.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # mkdocs loads this file by path
    sys.path.insert(0, str(ROOT))

DIRECTIVE = re.compile(r"^<!-- reference: ([\w-]+) -->$", re.MULTILINE)


def renderers() -> dict[str, Callable[[str], str]]:
    """Each directive's renderer, given the page's Markdown."""
    from docs.hooks import api_reference, cli_reference, config_reference, http_reference

    return {
        "cli": lambda page: cli_reference.render(),
        "configuration": lambda page: config_reference.render(),
        "http": lambda page: http_reference.render(),
        "signals": lambda page: api_reference.signals(),
        "api-unplaced": api_reference.unplaced,
    }


def expand(markdown: str) -> str:
    """``markdown`` with each reference directive replaced by its rendering; an unknown
    directive raises ValueError."""

    known = renderers()

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in known:
            raise ValueError(f"unknown reference directive {name!r}; known: {sorted(known)}")
        return known[name](markdown)

    return DIRECTIVE.sub(replace, markdown)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return expand(markdown)
