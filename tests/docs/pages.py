"""The code blocks of README.md and docs/**/*.md, with the markers written before them.

Every ```python, ```sh and ```bash block is run (see tests/docs/test_snippets.py);
other fence languages are shown, never run. Markers are HTML comments on the
line(s) directly before a fence, one marker a comment:

    <!-- snippet: skip reason words -->          not run; the reason is required
    <!-- snippet: setup                          hidden Python run before the block,
    queue = make_queue()                          in the page's namespace
    -->
    <!-- snippet: fixtures smtp webhook images postgres redis -->
    <!-- snippet: background -->                 (shell) runs until the page ends
    <!-- snippet: wait-http http://127.0.0.1:8000/jobq/health -->
    <!-- snippet: expect-error Text -->          must fail, its output holding Text

A marker that is unknown, malformed, not directly before a fence, or before a
block that is not run is an error naming the page and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RUN_LANGUAGES = frozenset({"python", "sh", "bash"})
FIXTURES = ("smtp", "webhook", "images", "postgres", "redis")
MARKERS = ("skip", "setup", "fixtures", "background", "wait-http", "expect-error")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_MARKER = re.compile(r"^\s*<!--\s*snippet\s*:\s*(?P<rest>.*)$", re.DOTALL)
_LOCAL_URL = re.compile(r"https?://(127\.0\.0\.1|localhost)[:/]\S*")
_LOOSE_MARKER = re.compile(r"<!--.*snippet", re.IGNORECASE)


class MarkerError(ValueError):
    """A marker that cannot be obeyed; the message names the page and line."""


@dataclass(frozen=True)
class Marker:
    name: str
    argument: str  # the words after the name; for setup, the hidden code
    line: int  # 1-based line of the comment's start


@dataclass(frozen=True)
class Block:
    page: str  # path relative to the repository, e.g. "docs/handlers/email.md"
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    markers: tuple[Marker, ...] = ()

    @property
    def runs(self) -> bool:
        return self.language in RUN_LANGUAGES and self.marker("skip") is None

    @property
    def first_code_line(self) -> int:
        return self.line + 1

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    def marker(self, name: str) -> Marker | None:
        return next((m for m in self.markers if m.name == name), None)

    @property
    def fixtures(self) -> tuple[str, ...]:
        marker = self.marker("fixtures")
        return tuple(marker.argument.split()) if marker else ()


@dataclass
class Page:
    path: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def runnable(self) -> list[Block]:
        return [b for b in self.blocks if b.language in RUN_LANGUAGES]


def page_paths(root: Path = ROOT) -> list[str]:
    """README.md, then every Markdown file under docs/, as paths relative to ``root``."""
    paths = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return [p.relative_to(root).as_posix() for p in paths if p.is_file()]


def read_page(path: str, root: Path = ROOT) -> Page:
    return parse_page(path, (root / path).read_text(encoding="utf-8"))


def parse_page(path: str, text: str) -> Page:
    """The page's fenced blocks with their markers; raises MarkerError for a bad marker."""
    lines = text.splitlines()
    page = Page(path)
    pending: list[Marker] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        number = index + 1
        fence = _FENCE.match(line)
        if fence:
            block, index = _read_block(path, lines, index, fence)
            page.blocks.append(_attach(block, pending))
            pending = []
            continue
        marker_match = _MARKER.match(line)
        if marker_match:
            marker, index = _read_marker(path, lines, index, marker_match.group("rest"))
            pending.append(marker)
            continue
        if _LOOSE_MARKER.search(line):
            raise MarkerError(
                f"{path}:{number}: malformed snippet marker {line.strip()!r}: write "
                "'<!-- snippet: NAME arguments -->' on its own line directly before the fence"
            )
        if pending:
            raise MarkerError(
                f"{path}:{pending[0].line}: snippet marker '{pending[0].name}' is not directly "
                "before a code fence (nothing but other markers may come between)"
            )
        index += 1
    if pending:
        raise MarkerError(f"{path}:{pending[0].line}: snippet marker at the end of the page")
    return page


def _read_block(path: str, lines: list[str], index: int, fence: re.Match[str]) -> tuple[Block, int]:
    indent, ticks = fence.group("indent"), fence.group("fence")
    info = fence.group("info").strip()
    language = info.split()[0].lower() if info else ""
    language = language.strip("{}.")
    body: list[str] = []
    end = index + 1
    closing = re.compile(rf"^[ \t]*{re.escape(ticks[0])}{{{len(ticks)},}}\s*$")
    while end < len(lines) and not closing.match(lines[end]):
        body.append(lines[end][len(indent) :] if lines[end].startswith(indent) else lines[end])
        end += 1
    if end == len(lines):
        raise MarkerError(f"{path}:{index + 1}: code fence is never closed")
    code = "\n".join(body) + "\n"
    return Block(path, index + 1, language, code), end + 1


def _read_marker(path: str, lines: list[str], index: int, rest: str) -> tuple[Marker, int]:
    start = index + 1
    if "-->" in rest:
        content, _, after = rest.partition("-->")
        if after.strip():
            raise MarkerError(f"{path}:{start}: text after a snippet marker's '-->'")
        end = index + 1
        hidden = ""
    else:
        content = rest
        body: list[str] = []
        end = index + 1
        while end < len(lines) and lines[end].strip() != "-->":
            body.append(lines[end])
            end += 1
        if end == len(lines):
            raise MarkerError(f"{path}:{start}: snippet marker comment is never closed ('-->')")
        end += 1
        hidden = "\n".join(body) + "\n"
    words = content.split(None, 1)
    if not words:
        raise MarkerError(f"{path}:{start}: snippet marker without a name; one of {MARKERS}")
    name, argument = words[0], (words[1].strip() if len(words) > 1 else "")
    if name not in MARKERS:
        raise MarkerError(f"{path}:{start}: unknown snippet marker {name!r}; one of {MARKERS}")
    if name == "setup":
        if argument:
            raise MarkerError(
                f"{path}:{start}: write a setup marker's code on the lines after "
                "'<!-- snippet: setup', closed by '-->' on a line of its own"
            )
        if not hidden.strip():
            raise MarkerError(f"{path}:{start}: setup marker without code")
        return Marker(name, hidden, start), end
    if hidden:
        raise MarkerError(f"{path}:{start}: only a setup marker may span several lines")
    _check_argument(path, start, name, argument)
    return Marker(name, argument, start), end


def _check_argument(path: str, line: int, name: str, argument: str) -> None:
    where = f"{path}:{line}"
    if name == "skip" and not argument:
        raise MarkerError(f"{where}: 'snippet: skip' needs a reason: '<!-- snippet: skip why -->'")
    if name == "fixtures":
        names = argument.split()
        unknown = [n for n in names if n not in FIXTURES]
        if not names or unknown:
            raise MarkerError(
                f"{where}: 'snippet: fixtures' takes names among {FIXTURES}, got {argument!r}"
            )
    if name == "background" and argument:
        raise MarkerError(f"{where}: 'snippet: background' takes no argument, got {argument!r}")
    if name == "wait-http" and not _LOCAL_URL.fullmatch(argument):
        raise MarkerError(
            f"{where}: 'snippet: wait-http' takes one local URL "
            f"(http://127.0.0.1:PORT/...), got {argument!r}"
        )
    if name == "expect-error" and not argument:
        raise MarkerError(f"{where}: 'snippet: expect-error' needs the text the output must hold")


def _attach(block: Block, markers: list[Marker]) -> Block:
    if not markers:
        return block
    where = f"{block.page}:{markers[0].line}"
    names = [m.name for m in markers]
    if block.language not in RUN_LANGUAGES:
        raise MarkerError(
            f"{where}: snippet markers apply to python, sh and bash blocks only; "
            f"this fence is {block.language or 'unlabelled'!r}"
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise MarkerError(f"{where}: snippet marker(s) {duplicates} given twice for one block")
    if "skip" in names and len(names) > 1:
        raise MarkerError(f"{where}: 'snippet: skip' cannot be combined with other markers")
    if "background" in names and block.language == "python":
        raise MarkerError(f"{where}: 'snippet: background' is for shell blocks only")
    if "background" in names and "expect-error" in names:
        raise MarkerError(f"{where}: a background block cannot also expect an error")
    return Block(block.page, block.line, block.language, block.code, tuple(markers))
