"""Run one page's blocks: one script, one interpreter, one fresh folder.

The page's python blocks run in order in one namespace; its shell blocks run
between them with ``bash -e``, with the project's ``.venv/bin`` first on PATH.
The script is written next to (not inside) the page's folder, so the folder
holds only what the blocks write.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.docs.fixtures import REQUIRED, SITE_HOOKS, PageFixtures, page_fixtures
from tests.docs.page_runtime import BEGIN, FAILED
from tests.docs.pages import Block, Page

RUNTIME = Path(__file__).resolve().parent / "page_runtime.py"
PAGE_TIMEOUT = 150.0
"""Seconds a page's whole script may take."""
VENV_BIN = Path(sys.executable).parent
"""The project's virtualenv: the tests run with its interpreter."""


class PageFailed(AssertionError):
    """A block of the page did not run as documented."""


@dataclass(frozen=True)
class PageRun:
    output: str
    returncode: int


def run_page(
    page: Page, workspace: Path, *, timeout: float = PAGE_TIMEOUT, keep_going: bool = False
) -> PageRun:
    """Run ``page`` in ``workspace/page`` (created empty); raise PageFailed naming the
    failing block's page and line, with the script's output. With ``keep_going``
    the blocks after a failed one run too, and every failure is named."""
    folder = workspace / "page"
    folder.mkdir(parents=True)
    logs = workspace / "logs"
    logs.mkdir()
    with page_fixtures(folder) as fixtures:
        script = build_script(page, fixtures, logs, keep_going=keep_going)
        (workspace / "page_script.py").write_text(script, encoding="utf-8")
        result = _run_script(workspace / "page_script.py", folder, _environment(fixtures), timeout)
    if result.returncode:
        raise PageFailed(_failure_message(page, result))
    return result


def build_script(
    page: Page, fixtures: PageFixtures, logs: Path, *, keep_going: bool = False
) -> str:
    """The Python script running ``page``'s blocks; starts the fixtures they declare."""
    lines = [
        "import importlib.util, os, sys",
        "sys.path.insert(0, os.getcwd())",
        f"_spec = importlib.util.spec_from_file_location('_jobq_docs_runtime', {str(RUNTIME)!r})",
        "_rt = importlib.util.module_from_spec(_spec)",
        "_spec.loader.exec_module(_rt)",
        "del _spec",
        f"_rt.keep_going = {keep_going!r}",
        "_ns = {'__name__': '__main__', '__builtins__': __builtins__}",
        "try:",
    ]
    for block in page.blocks:
        if not block.runs:
            continue
        for name in block.fixtures:
            fixtures.start(name)
            _check_placeholder(block, name)
        where = block.where
        lines.append(f"    _rt.begin({where!r}, {block.language!r})")
        expect = marker.argument if (marker := block.marker("expect-error")) else ""
        wait = block.marker("wait-http")
        if wait:
            lines.append(f"    _rt.wait_http({wait.argument!r}, {where!r})")
        setup = block.marker("setup")
        if setup:
            code = fixtures.rewrite(setup.argument)
            lines.append(
                f"    _rt.python(_ns, {code!r}, {f'{block.page}:{setup.line}'!r}, "
                f"{setup.line + 1}, '')"
            )
        code = fixtures.rewrite(block.code)
        if block.language == "python":
            lines.append(
                f"    _rt.python(_ns, {code!r}, {where!r}, {block.first_code_line}, {expect!r})"
            )
        else:
            background = block.marker("background") is not None
            lines.append(
                f"    _rt.shell({code!r}, {where!r}, {expect!r}, {background!r}, {str(logs)!r})"
            )
    lines += ["    _rt.finish()", "finally:", "    _rt.stop_background(report=False)"]
    return "\n".join(lines) + "\n"


def _check_placeholder(block: Block, fixture: str) -> None:
    setup = block.marker("setup")
    text = block.code + (setup.argument if setup else "")
    if not any(placeholder in text for placeholder in REQUIRED[fixture]):
        wanted = " or ".join(repr(p) for p in REQUIRED[fixture])
        raise PageFailed(
            f"{block.where}: the block declares the {fixture!r} fixture but holds no "
            f"{wanted} for it to stand in for"
        )


def _environment(fixtures: PageFixtures) -> dict[str, str]:
    # A reader's shell: no Flask or jobq settings of ours (the test server's URL stays,
    # for the postgres fixture's own use).
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "PYTEST_", "JOBQ_"))
        or k in ("JOBQ_TEST_POSTGRES_URL", "JOBQ_REQUIRE_POSTGRES")
    }
    env.pop("PYTHONPATH", None)
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(VENV_BIN.parent)
    env["PYTHONUNBUFFERED"] = "1"
    # A block never changes the project's environment from the package index.
    env["PIP_NO_INDEX"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(fixtures.env)
    if "webhook" in fixtures.started:
        env["PYTHONPATH"] = str(SITE_HOOKS)
    return env


def _run_script(script: Path, folder: Path, env: dict[str, str], timeout: float) -> PageRun:
    process = subprocess.Popen(
        [str(VENV_BIN / "python"), str(script)],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # so a timeout ends the blocks' own children too
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        text = output.decode(errors="replace")
        started = [line for line in text.splitlines() if line.startswith(BEGIN)]
        where = started[-1][len(BEGIN) :].strip() if started else "the page"
        return PageRun(text + f"\n{FAILED} {where}: timed out after {timeout:.0f} s\n", -9)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever a block left running
    return PageRun(output.decode(errors="replace"), process.returncode)


def _failure_message(page: Page, result: PageRun) -> str:
    failures = [line for line in result.output.splitlines() if line.startswith(FAILED)]
    headline = (
        "\n".join(f[len(FAILED) :].strip() for f in failures)
        if failures
        else f"{page.path}: the page's script exited with status {result.returncode}"
    )
    tail = result.output[-12000:]
    return f"{headline}\n--- output of {page.path} ---\n{tail}"
