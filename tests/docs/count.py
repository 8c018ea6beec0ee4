"""Count the documentation's code blocks: run as written, with a fixture, not run.

    python -m tests.docs.count      # a Markdown table per page, totals, and skip reasons

"With a fixture" means hidden setup code or a fixture's placeholder rewritten
(``<!-- snippet: setup`` / ``fixtures``); "not runnable" means ``snippet: skip``.
Blocks in other languages (ini, yaml, text, ...) are never run and are counted apart.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tests.docs.fixtures import REQUIRED
from tests.docs.pages import Block, Page, page_paths, read_page

AS_WRITTEN, WITH_FIXTURE, NOT_RUNNABLE = "as written", "with fixture", "not runnable"
KINDS = (AS_WRITTEN, WITH_FIXTURE, NOT_RUNNABLE)


@dataclass
class PageCount:
    path: str
    kinds: Counter[str] = field(default_factory=Counter)
    other_languages: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, reason)


def classify(page: Page) -> list[tuple[Block, str]]:
    """Each python/sh/bash block of ``page`` with its kind."""
    active: set[str] = set()
    kinds = []
    for block in page.runnable:
        skip = block.marker("skip")
        if skip:
            kinds.append((block, NOT_RUNNABLE))
            continue
        active.update(block.fixtures)
        rewritten = any(p in block.code for name in active for p in REQUIRED[name])
        hidden = block.marker("setup") or block.marker("fixtures")
        kinds.append((block, WITH_FIXTURE if hidden or rewritten else AS_WRITTEN))
    return kinds


def count_page(page: Page) -> PageCount:
    result = PageCount(page.path)
    for block, kind in classify(page):
        result.kinds[kind] += 1
        if kind == NOT_RUNNABLE:
            skip = block.marker("skip")
            result.skipped.append((block.where, skip.argument if skip else ""))
    result.other_languages = len(page.blocks) - len(page.runnable)
    return result


def count_all() -> list[PageCount]:
    return [count_page(read_page(path)) for path in page_paths()]


def table(counts: list[PageCount]) -> str:
    header = ["page", *KINDS, "other languages (not run)"]
    rows = [header, ["---"] * len(header)]
    total: Counter[str] = Counter()
    others = 0
    for count in counts:
        rows.append([count.path, *(str(count.kinds[k]) for k in KINDS), str(count.other_languages)])
        total.update(count.kinds)
        others += count.other_languages
    rows.append(["**total**", *(f"**{total[k]}**" for k in KINDS), f"**{others}**"])
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    skipped = [s for c in counts for s in c.skipped]
    if skipped:
        lines += ["", "Not runnable, with the reasons given:"]
        lines += [f"- `{where}`: {reason}" for where, reason in skipped]
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(count_all()))
