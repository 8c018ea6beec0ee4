"""The configuration reference, from the code: the Flask extension's ``JOBQ_*`` keys
(``JobQ.init_app``'s docstring, and the defaults ``init_app`` really writes into
``app.config``), the arguments of ``DurableQueue(...)`` and ``start_workers(...)``
(signatures and docstrings), and the environment variables jobq reads (found in its
source; :data:`ENVIRONMENT` says what each means)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import tempfile
from pathlib import Path
from typing import Any

from .text import cell, code, markdown, params

ROOT = Path(__file__).resolve().parents[2]

ENVIRONMENT = {
    "JOBQ_DATABASE": (
        "The database of every `jobq` command given no `--db`: a SQLite file path, a "
        "`sqlite:///path` URL or a `postgresql://` URL."
    ),
    "JOBQ_SQLITE_WAKEUP": (
        "`0`, `off`, `false` or `no` turns off the SQLite wake-up channel in this process: "
        "it neither wakes other processes' idle worker pools when it enqueues nor is woken, "
        "and its pools find other processes' jobs by polling every `poll_interval`. On by "
        "default; see [the wake-up channel](../deployment.md#the-sqlite-wake-up-channel)."
    ),
    "FLASK_RUN_FROM_CLI": (
        "Set by Flask's `flask` command, not by you: `app.run()` does nothing under it, "
        "so the extension does not start workers for that call."
    ),
    "FLASK_DEBUG": (
        "Flask's debug switch; the extension follows Flask's rules with it to tell whether "
        "`app.run()` serves in this process or in the reloader's child."
    ),
    "PROMETHEUS_MULTIPROC_DIR": (
        "prometheus_client's multiprocess mode (the `prometheus` extra): the folder where "
        "each process keeps its jobq counters, summed by a scrape. Set it in the shell that "
        "starts gunicorn, to an empty folder."
    ),
}
"""What each environment variable read in jobq's source means; a test fails when
the source reads one that is not here."""

_KEY_LINE = re.compile(r"^``(JOBQ_\w+)``(?:, ``(JOBQ_\w+)``)*$")


def flask_settings() -> dict[str, str]:
    """Each ``JOBQ_*`` key documented in ``JobQ.init_app``'s docstring, with its text."""
    from flask_jobq import JobQ

    doc = inspect.getdoc(JobQ.init_app) or ""
    settings: dict[str, str] = {}
    keys: list[str] = []
    for line in doc.splitlines():
        if _KEY_LINE.match(line.strip()) and not line.startswith(" "):
            keys = re.findall(r"``(JOBQ_\w+)``", line)
            for key in keys:
                settings[key] = ""
        elif keys and line.startswith(" "):
            for key in keys:
                settings[key] += line.strip() + "\n"
        elif keys and not line.strip():
            continue
        else:
            keys = []
    return settings


def flask_defaults() -> dict[str, Any]:
    """What ``init_app`` writes into a fresh app's config (the instance folder shown
    as ``<instance>``)."""
    from flask import Flask

    from flask_jobq import JobQ, state_for

    with tempfile.TemporaryDirectory() as folder:
        app = Flask("reference", instance_path=folder)
        app.config["JOBQ_START_WORKERS"] = False
        JobQ().init_app(app)
        try:
            values = {k: v for k, v in app.config.items() if k.startswith("JOBQ_")}
        finally:
            state_for(app).close()
    values["JOBQ_START_WORKERS"] = True  # set above so no worker starts; True by default
    return {
        key: value.replace(folder, "<instance>") if isinstance(value, str) else value
        for key, value in values.items()
    }


def _types() -> dict[str, str]:
    """The checked type of each key, from the settings objects' fields."""
    from flask_jobq.config import JobQConfig, MonitorConfig

    fields = {
        f.name: str(f.type)
        for cls in (JobQConfig, MonitorConfig)
        for f in dataclasses.fields(cls)
        if f.name not in ("handlers", "monitor")
    }
    fields["database"] = "str | os.PathLike"
    return fields


def _type_of(key: str, default: Any, types: dict[str, str]) -> str:
    suffix = key.removeprefix("JOBQ_").lower()
    for name, annotation in types.items():
        if suffix == name or suffix.endswith("_" + name):
            return annotation
    if key in ("JOBQ_EMAIL", "JOBQ_IMAGE", "JOBQ_WEBHOOK"):
        return "dict | None"
    return type(default).__name__ if default is not None else "see meaning"


def _shown_value(value: Any) -> str:
    """A default as code would write it: a public jobq constant by its name."""
    import jobq

    for name in jobq.__all__:
        if getattr(jobq, name) is value and not isinstance(value, (bool, int, float, str)):
            return f"jobq.{name}"
    if callable(value):
        return str(getattr(value, "__qualname__", repr(value)))
    return repr(value)


def _default_shown(default: Any) -> str:
    return code(_shown_value(default))


def _flask_section() -> list[str]:
    documented = flask_settings()
    defaults = flask_defaults()
    types = _types()
    lines = [
        "## Flask settings (`app.config`)",
        "",
        "Read by `JobQ.init_app(app)` with `app.config.setdefault`, so after it the "
        "defaults below are in `app.config`. A bad value raises `ValueError` or "
        "`TypeError` naming the key.",
        "",
    ]
    for key in sorted(set(documented) | set(defaults)):
        default = defaults.get(key)
        shown = _default_shown(default) if key in defaults else "not set"
        lines += [
            f"### `{key}`",
            "",
            f"Type: {code(_type_of(key, default, types))}. Default: {shown}.",
            "",
            markdown(documented.get(key, "")) or "(not described in `JobQ.init_app`)",
            "",
        ]
    return lines


def _arguments_section(title: str, function: Any, docs_from: Any) -> list[str]:
    described = params(docs_from)
    lines = [
        f"## {title}",
        "",
        "| argument | type | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for name, parameter in inspect.signature(function).parameters.items():
        if name == "self":
            continue
        default = (
            "required"
            if parameter.default is inspect.Parameter.empty
            else code(_shown_value(parameter.default))
        )
        annotation = parameter.annotation
        shown_type = "-" if annotation is inspect.Parameter.empty else code(str(annotation))
        meaning = cell(described.get(name, "")) if name in described else "(not documented)"
        lines.append(f"| `{name}` | {shown_type} | {default} | {meaning} |")
    return [*lines, ""]


def environment_reads() -> dict[str, list[str]]:
    """Environment variables read in jobq's and flask_jobq's source (``os.environ[...]``,
    ``os.environ.get(...)``, ``os.getenv(...)``, a module constant as the name
    included), with the files reading each."""
    found: dict[str, list[str]] = {}
    paths = sorted([*ROOT.glob("jobq/**/*.py"), *ROOT.glob("flask_jobq/**/*.py")])
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in paths}
    # Module-level string constants of every module: a name may be imported from another.
    constants = {
        target.id: node.value.value
        for tree in trees.values()
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }
    for path, tree in trees.items():
        for node in ast.walk(tree):
            name_node = _environment_name(node)
            if name_node is None:
                continue
            if isinstance(name_node, ast.Constant) and isinstance(name_node.value, str):
                name = name_node.value
            elif isinstance(name_node, ast.Name) and name_node.id in constants:
                name = constants[name_node.id]
            else:
                name = ast.unparse(name_node)
            files = found.setdefault(name, [])
            if path.relative_to(ROOT).as_posix() not in files:
                files.append(path.relative_to(ROOT).as_posix())
    return found


def _is_environ(node: ast.AST) -> bool:
    """``os.environ`` (not a WSGI request's ``environ``)."""
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def _environment_name(node: ast.AST) -> ast.expr | None:
    if (
        isinstance(node, ast.Compare)
        and len(node.ops) == 1
        and isinstance(node.ops[0], (ast.In, ast.NotIn))
        and _is_environ(node.comparators[0])
    ):
        return node.left
    if isinstance(node, ast.Subscript) and _is_environ(node.value):
        return node.slice
    if isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Attribute):
        func = node.func
        if func.attr in ("get", "pop", "setdefault") and _is_environ(func.value):
            return node.args[0]
        if func.attr == "getenv" and isinstance(func.value, ast.Name) and func.value.id == "os":
            return node.args[0]
    return None


def _environment_section() -> list[str]:
    lines = [
        "## Environment variables",
        "",
        "Read by jobq itself (found in its source when this page is built):",
        "",
        "| variable | meaning | read in |",
        "| --- | --- | --- |",
    ]
    for name, files in sorted(environment_reads().items()):
        meaning = ENVIRONMENT.get(name, "(not described yet)")
        lines.append(f"| `{name}` | {meaning} | {', '.join(f'`{f}`' for f in files)} |")
    lines += [
        "",
        "Libraries jobq uses read their own: libpq's `PG*` variables fill in what a "
        "`postgresql://` URL leaves out (`PGPASSWORD`, `PGSSLMODE`, ...), and `TZ` sets "
        "the local time zone of the standard library. The webhook handler ignores "
        "`HTTP(S)_PROXY`, `REQUESTS_CA_BUNDLE` and `.netrc` on purpose (its `cafile` "
        "setting names a CA bundle). jobq's own test suite reads `JOBQ_TEST_POSTGRES_URL` "
        "(a PostgreSQL server for its tests) and `JOBQ_REQUIRE_POSTGRES=1` (fail rather "
        "than skip without one).",
        "",
    ]
    return lines


def render() -> str:
    import jobq

    return "\n".join(
        [
            *_flask_section(),
            *_arguments_section(
                "`DurableQueue(...)` arguments", jobq.DurableQueue.__init__, jobq.DurableQueue
            ),
            *_arguments_section(
                "`DurableQueue.start_workers(...)` arguments",
                jobq.DurableQueue.start_workers,
                jobq.DurableQueue.start_workers,
            ),
            *_environment_section(),
        ]
    )
