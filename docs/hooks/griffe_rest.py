"""A griffe extension: jobq's docstrings are written with reStructuredText's roles
and ``::`` literal blocks; mkdocstrings shows docstrings as Markdown. This turns
``:class:`~jobq.Job``` into ```Job```, ``:meth:`x``` into ```x```, and drops the
``::`` that introduces an (already indented, so already code) example."""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|meth|func|mod|attr|data|exc|obj|ref):`(~?)(?:[^`<]*<)?([^`>]+)>?`")


def _role(match: re.Match[str]) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


def rest_to_markdown(text: str) -> str:
    text = _ROLE.sub(_role, text)
    lines = []
    for line in text.splitlines():
        if line.strip() == "::":
            continue
        lines.append(line[:-1] if line.endswith("::") else line)
    return "\n".join(lines)


class RestToMarkdown(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rest_to_markdown(obj.docstring.value)
