"""The house rules of the code, checked: module sizes, no import cycle, the
layering contract in pyproject.toml, and no function too complex to read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from radon.complexity import cc_rank, cc_visit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("jobq", "flask_jobq")
MAX_LINES = 500
SOURCES = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_no_module_is_over_500_lines() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in SOURCES}
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}


def test_no_import_cycle_not_even_through_type_only_imports() -> None:
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=False)
    cycles = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if imported in graph.modules and graph.chain_exists(imported, module):
                chain = graph.find_shortest_chain(imported, module) or ()
                cycles.add(" -> ".join((module, *chain)))
    assert sorted(cycles) == []


def test_the_layers_hold() -> None:
    linter = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_is_rated_d_or_worse(path: Path) -> None:
    blocks = cc_visit(path.read_text())
    too_complex = [
        f"{b.name} ({cc_rank(b.complexity)} {b.complexity})"
        for b in blocks
        if cc_rank(b.complexity) >= "D"
    ]
    assert too_complex == []
