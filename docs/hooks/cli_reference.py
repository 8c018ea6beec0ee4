"""The command-line reference, from the parsers themselves: ``jobq`` (argparse,
:func:`jobq.cli.build_parser`) and ``flask jobq`` (click, ``flask_jobq.cli.jobq_cli``)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import click

from .text import cell, code, markdown


def render() -> str:
    import jobq.cli
    from jobq.cli import build_parser

    parser = build_parser()
    exit_codes = next(
        (p for p in (jobq.cli.__doc__ or "").split("\n\n") if p.startswith("Exit codes")), ""
    )
    parts = [
        "## Exit codes",
        "",
        markdown(exit_codes),
        "",
        "## `jobq`",
        "",
        "`jobq --help` says:",
        "",
        "```text",
        _fixed_width(parser.format_help).rstrip(),
        "```",
        "",
    ]
    for name, sub in _subcommands(parser).items():
        parts += _argparse_command(f"jobq {name}", sub)
    parts += _click_group()
    return "\n".join(parts)


def _fixed_width(format_text: Callable[[], str]) -> str:
    """argparse wraps to the terminal's width (``COLUMNS``); the site is always 88 wide."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "88"
    try:
        return format_text()
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every option (``--db``, ``-c``) and positional (``ID``) of one command."""
    names: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        names += action.option_strings or [str(action.metavar or action.dest)]
    return names


def _argparse_command(title: str, parser: argparse.ArgumentParser) -> list[str]:
    lines = [f"### `{title}`", ""]
    if parser.description:
        lines += [parser.description, ""]
    lines += ["```text", _fixed_width(parser.format_usage).strip(), "```", ""]
    rows = ["| option | meaning | default |", "| --- | --- | --- |"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        names = ", ".join(action.option_strings) or str(action.metavar or action.dest)
        if action.option_strings and action.metavar and action.nargs != 0:
            names += f" {action.metavar}"
        default = action.default
        shown = (
            "required"
            if action.required
            else "-"
            if default in (None, False, [], argparse.SUPPRESS)
            else code(repr(default) if isinstance(default, str) else str(default))
        )
        rows.append(f"| {code(names)} | {cell(action.help or '')} | {shown} |")
    return [*lines, *rows, ""]


def click_commands() -> dict[str, click.Command]:
    from flask_jobq.cli import jobq_cli

    return dict(sorted(jobq_cli.commands.items()))


def click_option_strings(command: click.Command) -> list[str]:
    names: list[str] = []
    for param in command.params:
        if isinstance(param, click.Option):
            names += [*param.opts, *param.secondary_opts]
        else:
            names.append(param.human_readable_name)
    return names


def _click_group() -> list[str]:
    from flask_jobq.cli import jobq_cli

    lines = [
        "## `flask jobq`",
        "",
        (jobq_cli.help or "").strip(),
        "",
        "The same verbs on the app's own queue (`JOBQ_DATABASE`) and tasks, so no `--db` "
        "or `--import`; name the app as for any `flask` command (`flask --app myapp jobq ...`). "
        "Bad input exits with status 2 and one line `Error: ...`.",
        "",
    ]
    for name, command in click_commands().items():
        context = click.Context(command, info_name=f"flask jobq {name}")
        lines += [f"### `flask jobq {name}`", ""]
        if command.help:
            lines += [command.help.strip(), ""]
        lines += ["```text", command.get_usage(context).strip(), "```", ""]
        rows = ["| option | meaning | default |", "| --- | --- | --- |"]
        for param in command.params:
            if isinstance(param, click.Option):
                names = ", ".join([*param.opts, *param.secondary_opts])
                if not param.is_flag and param.metavar:
                    names += f" {param.metavar}"
                help_text = param.help or ""
                default = param.default
            else:
                names = param.human_readable_name
                help_text = "argument"
                default = None
            shown = (
                "required"
                if param.required
                else "-"
                if default in (None, False, (), [])
                else code(str(default))
            )
            rows.append(f"| {code(names)} | {cell(help_text)} | {shown} |")
        if len(rows) > 2:
            lines += [*rows, ""]
    return lines
