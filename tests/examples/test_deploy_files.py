"""docs/deployment.md shows the files of examples/deploy/ exactly as they are.

The page writes app.py and gunicorn.conf.py with shell here-documents (so that
its blocks run them for real) and shows the systemd units, the Dockerfile and
the compose files in fences headed by their path; each copy must equal the file,
and every file of the folder must be shown.
"""

from __future__ import annotations

import re

import pytest

from tests.helpers import ROOT

DEPLOY = ROOT / "examples" / "deploy"
PAGE = ROOT / "docs" / "deployment.md"

_HEREDOC = re.compile(r"^cat > (?P<name>\S+) <<'EOF'\n(?P<body>.*?)^EOF$", re.MULTILINE | re.DOTALL)
_SHOWN = re.compile(
    r"^`examples/deploy/(?P<name>[^`]+)`:\n\n```[a-z]+\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


def page_copies() -> dict[str, list[str]]:
    """Each file name the page writes or shows, with every copy of it on the page."""
    text = PAGE.read_text(encoding="utf-8")
    copies: dict[str, list[str]] = {}
    for pattern in (_HEREDOC, _SHOWN):
        for match in pattern.finditer(text):
            copies.setdefault(match.group("name"), []).append(match.group("body"))
    return copies


def deploy_files() -> list[str]:
    return sorted(p.name for p in DEPLOY.iterdir() if p.is_file() and p.name != "__pycache__")


@pytest.mark.parametrize("name", deploy_files())
def test_the_page_shows_each_deploy_file_as_it_is(name: str) -> None:
    shown = page_copies().get(name)
    assert shown, f"docs/deployment.md does not show examples/deploy/{name}"
    expected = (DEPLOY / name).read_text(encoding="utf-8")
    for copy in shown:
        assert copy == expected, f"docs/deployment.md's copy of {name} differs from the file"


def test_every_file_the_page_names_is_in_examples_deploy() -> None:
    written_by_the_page_only = {"tasks.py"}  # the Without Flask section's own module
    named = set(page_copies()) - written_by_the_page_only
    assert named <= set(deploy_files()), sorted(named - set(deploy_files()))
