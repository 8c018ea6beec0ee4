"""Docstring text (reStructuredText roles and literals) as Markdown, for the references."""

from __future__ import annotations

import inspect
import re

_ROLE = re.compile(r":(?:class|meth|func|mod|attr|data|exc|obj):`~?(?:[^`<]*<)?([^`>]+)>?`")


def markdown(text: str) -> str:
    """``x`` -> `x`, :class:`jobq.Job` -> `jobq.Job`, lines joined into one paragraph."""
    text = _ROLE.sub(lambda m: f"``{m.group(1)}``", text)
    text = text.replace("``", "`")
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def cell(text: str) -> str:
    """Text for a Markdown table cell: pipes escaped outside code spans (inside them,
    Python-Markdown's tables already ignore them and would show the backslash)."""
    parts = re.split(r"(`[^`]*`)", markdown(text))
    return "".join(p if p.startswith("`") else p.replace("|", "\\|") for p in parts) or "-"


def params(obj: object) -> dict[str, str]:
    """``:param name: text`` entries of ``obj``'s docstring, by name; also the
    ````name``: text.`` sentences of docstrings written as prose."""
    doc = inspect.getdoc(obj) or ""
    found: dict[str, str] = {}
    for match in re.finditer(r"^:param (\w+):(.*(?:\n(?!:|\S).*)*)", doc, re.MULTILINE):
        found[match.group(1)] = match.group(2).strip()
    for match in re.finditer(r"``(\w+)``: ([^.]*(?:\.\w[^.]*)*\.)", doc):
        found.setdefault(match.group(1), match.group(2).strip())
    return found


def code(value: str) -> str:
    """``value`` as inline code (a table cell's pipes inside it need no escape)."""
    return f"`` {value} ``" if "`" in value else f"`{value}`"
