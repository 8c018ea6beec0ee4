"""What the API reference generates: the signals with their arguments, and a
``:::`` entry for every public name the page does not place itself."""

from __future__ import annotations

import re
from types import ModuleType

from .text import cell

PACKAGES = ("jobq", "flask_jobq")


def public_names() -> list[str]:
    """``jobq.X`` and ``flask_jobq.X`` for every X in the packages' ``__all__``."""
    import flask_jobq
    import jobq

    return [f"{module.__name__}.{name}" for module in (jobq, flask_jobq) for name in module.__all__]


def placed(markdown_text: str) -> set[str]:
    """Names the page documents with a ``::: name`` line."""
    return set(re.findall(r"^::: ([\w.]+)\s*$", markdown_text, re.MULTILINE))


def unplaced(markdown_text: str) -> str:
    missing = [name for name in public_names() if name not in placed(markdown_text)]
    if not missing:
        return ""
    lines = ["## More", ""]
    for name in missing:
        lines += [f"::: {name}", ""]
    return "\n".join(lines)


def _signals_of(module: ModuleType) -> list[tuple[str, str]]:
    from blinker import NamedSignal

    return [
        (name, getattr(value, "__doc__", None) or "")
        for name, value in vars(module).items()
        if isinstance(value, NamedSignal)
    ]


def signals() -> str:
    import flask_jobq.signals
    import jobq.signals

    lines = []
    for module, sender in (
        (jobq.signals, "the `BoundedExecutor` (`task_*`, `executor_idle`) or the `DurableQueue`"),
        (flask_jobq.signals, "the Flask app"),
    ):
        lines += [
            f"`{module.__name__}`, sent by {sender}:",
            "",
            "| signal | when, and the keyword arguments |",
            "| --- | --- |",
        ]
        for name, doc in _signals_of(module):
            lines.append(f"| `{name}` | {cell(doc)} |")
        lines.append("")
    return "\n".join(lines)


def signal_names() -> list[str]:
    import flask_jobq.signals
    import jobq.signals

    return [
        f"{module.__name__}.{name}"
        for module in (jobq.signals, flask_jobq.signals)
        for name, _ in _signals_of(module)
    ]
