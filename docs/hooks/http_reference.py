"""The monitor's HTTP reference, from the OpenAPI document the blueprint serves at
``/jobq/openapi.json`` (fetched from a testing app, so it is what users get)."""

from __future__ import annotations

import json
import tempfile
from typing import Any

from .text import cell, code

METHODS = ("get", "post", "put", "patch", "delete")


def served_document() -> dict[str, Any]:
    """``GET /jobq/openapi.json`` of a fresh testing app."""
    from flask import Flask

    from flask_jobq import JobQ, state_for

    with tempfile.TemporaryDirectory() as folder:
        app = Flask("reference", instance_path=folder)
        app.config.update(TESTING=True, JOBQ_START_WORKERS=False)
        JobQ().init_app(app)
        try:
            response = app.test_client().get("/jobq/openapi.json")
            assert response.status_code == 200, response.data
            document: dict[str, Any] = json.loads(response.data)
        finally:
            state_for(app).close()
    return document


def monitor_routes() -> set[tuple[str, str]]:
    """(METHOD, path with ``{name}`` parameters) of every route the monitor serves."""
    import re

    from flask import Flask

    from flask_jobq import JobQ, state_for

    with tempfile.TemporaryDirectory() as folder:
        app = Flask("reference", instance_path=folder)
        app.config.update(TESTING=True, JOBQ_START_WORKERS=False)
        JobQ().init_app(app)
        state_for(app).close()
        routes = set()
        for rule in app.url_map.iter_rules():
            if not rule.rule.startswith("/jobq"):
                continue
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            for method in rule.methods or ():
                if method not in ("HEAD", "OPTIONS"):
                    routes.add((method, path))
    return routes


def _schema_text(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return f"[{name}](#{name.lower()})"
    kind = schema.get("type", "")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array" and "items" in schema:
        return f"array of {_schema_text(schema['items'])}"
    details = []
    if "enum" in schema:
        details.append("one of " + ", ".join(code(str(v)) for v in schema["enum"]))
    for key in ("minimum", "maximum", "minLength", "default"):
        if key in schema:
            details.append(f"{key} {code(json.dumps(schema[key]))}")
    if "anyOf" in schema or "oneOf" in schema:
        return " or ".join(_schema_text(s) for s in schema.get("anyOf", schema.get("oneOf")))
    return f"{kind or 'any'}" + (f" ({', '.join(details)})" if details else "")


def _operation(method: str, path: str, prefix: str, operation: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {prefix}{path}`", ""]
    for key in ("summary", "description"):
        if operation.get(key):
            lines += [operation[key], ""]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += [
            "| parameter | in | required | schema | meaning |",
            "| --- | --- | --- | --- | --- |",
        ]
        for p in parameters:
            lines.append(
                f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} | "
                f"{_schema_text(p.get('schema', {}))} | {cell(p.get('description', ''))} |"
            )
        lines.append("")
    body = operation.get("requestBody")
    if body:
        lines += [f"Request body: {body.get('description', '')}", ""]
    lines += ["| status | meaning | body |", "| --- | --- | --- |"]
    for status, response in operation.get("responses", {}).items():
        content = response.get("content", {}).get("application/json", {})
        shown = _schema_text(content["schema"]) if "schema" in content else "-"
        lines.append(f"| {status} | {cell(response.get('description', ''))} | {shown} |")
    return [*lines, ""]


def _schemas(document: dict[str, Any]) -> list[str]:
    lines = ["## Schemas", ""]
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        lines += [f"### {name}", ""]
        if schema.get("description"):
            lines += [schema["description"], ""]
        properties = schema.get("properties", {})
        if properties:
            required = set(schema.get("required", []))
            lines += ["| field | schema | always there | meaning |", "| --- | --- | --- | --- |"]
            for field, sub in properties.items():
                lines.append(
                    f"| `{field}` | {_schema_text(sub)} | {'yes' if field in required else 'no'} "
                    f"| {cell(sub.get('description', ''))} |"
                )
            lines.append("")
        elif schema.get("type") or schema.get("enum"):
            lines += [_schema_text(schema), ""]
    return lines


def render() -> str:
    document = served_document()
    prefix = document.get("servers", [{"url": ""}])[0]["url"].rstrip("/")
    lines = [
        document["info"].get("description", ""),
        "",
        f"The document itself is served at `{prefix}/openapi.json` (OpenAPI "
        f"{document['openapi']}); the paths below are under the default prefix "
        f"`{prefix}` (`JOBQ_MONITOR_URL_PREFIX`).",
        "",
        "## Endpoints",
        "",
    ]
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                lines += _operation(method, path, prefix, item[method])
    return "\n".join([*lines, *_schemas(document)])
