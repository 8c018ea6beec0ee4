"""The references cannot drift from the code: every public name, signal, ``JOBQ_*``
key, constructor argument, environment variable, command-line option and monitor
route is in the reference pages as the site renders them (docs/hooks/reference.py)."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from docs.hooks import api_reference, cli_reference, config_reference, http_reference
from docs.hooks.reference import expand
from tests.docs.pages import ROOT

REFERENCE = ROOT / "docs" / "reference"


def rendered(name: str) -> str:
    return expand((REFERENCE / name).read_text(encoding="utf-8"))


def section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    start = text.index(heading + "\n")
    following = re.compile(rf"^#{{1,{len(level)}}} ", re.MULTILINE)
    end = following.search(text, start + len(heading))
    return text[start : end.start() if end else len(text)]


def test_every_public_name_is_in_the_api_reference() -> None:
    placed = api_reference.placed(rendered("api.md"))
    missing = [name for name in api_reference.public_names() if name not in placed]
    assert not missing, f"names in __all__ missing from docs/reference/api.md: {missing}"
    for name in placed:  # and nothing stale: every entry still exists
        module, _, attribute = name.rpartition(".")
        try:
            importlib.import_module(name)
        except ImportError:
            assert hasattr(importlib.import_module(module), attribute), name


def test_every_signal_is_in_the_api_reference_with_its_arguments() -> None:
    text = rendered("api.md")
    for name in api_reference.signal_names():
        short = name.rsplit(".", 1)[1]
        rows = [line for line in text.splitlines() if line.startswith(f"| `{short}` |")]
        assert rows, f"signal {name} missing from docs/reference/api.md"
        assert all("Keywords" in row or "No keywords" in row for row in rows), rows


def _jobq_keys_in_source() -> set[str]:
    keys: set[str] = set()
    for path in [*ROOT.glob("jobq/**/*.py"), *ROOT.glob("flask_jobq/**/*.py")]:
        keys.update(re.findall(r"\bJOBQ_[A-Z][A-Z0-9_]*[A-Z0-9]\b", path.read_text("utf-8")))
    return keys


def test_every_jobq_key_is_in_the_configuration_reference() -> None:
    text = rendered("configuration.md")
    environment = section(text, "## Environment variables")
    missing = [
        key
        for key in sorted(_jobq_keys_in_source())
        if f"### `{key}`" not in text and f"| `{key}` |" not in environment
    ]
    assert not missing, f"JOBQ_* names in the code missing from the reference: {missing}"


def test_every_flask_setting_is_described_in_init_app() -> None:
    described = config_reference.flask_settings()
    undescribed = [key for key in config_reference.flask_defaults() if not described.get(key)]
    assert not undescribed, (
        f"JobQ.init_app reads {undescribed} but its docstring does not describe them"
    )


@pytest.mark.parametrize(
    ("heading", "function"),
    [
        ("## `DurableQueue(...)` arguments", "DurableQueue.__init__"),
        ("## `DurableQueue.start_workers(...)` arguments", "DurableQueue.start_workers"),
    ],
)
def test_every_argument_is_in_the_configuration_reference(heading: str, function: str) -> None:
    import jobq

    table = section(rendered("configuration.md"), heading)
    target = jobq
    for part in function.split("."):
        target = getattr(target, part)
    names = [n for n in inspect.signature(target).parameters if n != "self"]  # type: ignore[arg-type]
    missing = [name for name in names if f"| `{name}` |" not in table]
    assert not missing, f"{function} arguments missing from the reference: {missing}"
    undescribed = [line for line in table.splitlines() if "(not documented)" in line]
    assert not undescribed, f"{function} arguments its docstring does not describe: {undescribed}"


def test_every_environment_variable_read_is_described() -> None:
    reads = config_reference.environment_reads()
    known = config_reference.ENVIRONMENT
    undescribed = {name: files for name, files in reads.items() if name not in known}
    assert not undescribed, (
        f"the code reads environment variables the reference does not describe: {undescribed}; "
        "add them to ENVIRONMENT in docs/hooks/config_reference.py"
    )
    assert "JOBQ_DATABASE" in reads  # the scan finds what it should


def test_every_jobq_command_and_option_is_in_the_cli_reference() -> None:
    from jobq.cli import build_parser

    text = rendered("cli.md")
    assert "## Exit codes" in text
    for name, parser in cli_reference._subcommands(build_parser()).items():
        part = section(text, f"### `jobq {name}`")
        missing = [o for o in cli_reference.option_strings(parser) if o not in part]
        assert not missing, f"jobq {name}: options missing from the reference: {missing}"


def test_every_flask_jobq_command_and_option_is_in_the_cli_reference() -> None:
    text = rendered("cli.md")
    for name, command in cli_reference.click_commands().items():
        part = section(text, f"### `flask jobq {name}`")
        missing = [o for o in cli_reference.click_option_strings(command) if o not in part]
        assert not missing, f"flask jobq {name}: options missing from the reference: {missing}"


def test_every_monitor_route_is_in_the_http_reference() -> None:
    text = rendered("http.md")
    # `/jobq` may be served as the same page as `/jobq/`: either spelling documents it.
    missing = sorted(
        f"{method} {path}"
        for method, path in http_reference.monitor_routes()
        if not any(
            f"### `{method} {spelling}`" in text
            for spelling in {path, path.rstrip("/"), path.rstrip("/") + "/"}
        )
    )
    assert not missing, f"monitor routes missing from docs/reference/http.md: {missing}"


def test_an_unknown_reference_directive_fails() -> None:
    with pytest.raises(ValueError, match="unknown reference directive 'clii'"):
        expand("<!-- reference: clii -->\n")


def test_the_reference_pages_are_the_generated_ones() -> None:
    for name in ("configuration.md", "cli.md", "http.md"):
        assert "<!-- reference: " in (REFERENCE / name).read_text("utf-8"), name
    assert Path(REFERENCE / "api.md").read_text("utf-8").count("\n::: ") > 40
