"""JSON encoding of job payloads and results. Never pickle: stored data is never code.

What goes in comes back out the same (tuples come back as lists): strings,
numbers, booleans, None, lists and dicts with string keys. Anything else is
refused before it is written, with the path to the offending value.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import PayloadError

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))

_HINTS = {
    "datetime": "pass dt.isoformat() and parse it in the task",
    "date": "pass d.isoformat() and parse it in the task",
    "Decimal": "pass str(value)",
    "UUID": "pass str(value)",
    "bytes": "store the data in a file or base64-encode it",
    "set": "pass a sorted list",
    "frozenset": "pass a sorted list",
    "Path": "pass str(path)",
    "PosixPath": "pass str(path)",
    "WindowsPath": "pass str(path)",
}


def encode(value: Any, *, name: str = "payload") -> str:
    """Return ``value`` as compact JSON, or raise :class:`~jobq.errors.PayloadError`
    (a TypeError) naming the first value JSON cannot hold faithfully."""
    problem = _find_problem(value, name)
    if problem is not None:
        path, message = problem
        raise PayloadError(f"{path} {message}", path)
    return _encoder.encode(value)


PLAIN = frozenset({str, int, bool, type(None)})
"""Types whose values JSON holds exactly, with nothing inside to check."""

_PLAIN_TEXT: dict[type, Any] = {
    str: json.encoder.encode_basestring,  # what the encoder uses with ensure_ascii=False
    int: int.__repr__,
    bool: lambda value: "true" if value else "false",
    type(None): lambda value: "null",
}


def encode_plain_args(args: Any) -> str:
    """``encode({"args": list(args), "kwargs": {}})`` for args whose types are all in
    :data:`PLAIN` (the caller checked), without the encoder's per-call setup."""
    return '{"args":[' + ",".join([_PLAIN_TEXT[type(v)](v) for v in args]) + '],"kwargs":{}}'


def decode(text: str) -> Any:
    """Parse JSON written by :func:`encode`."""
    return json.loads(text)


def _find_problem(value: Any, path: str) -> tuple[str, str] | None:
    # Walk before encoding: json.dumps would silently turn {1: "a"} into {"1": "a"}
    # and its own errors do not say where the bad value is.
    if value is None or isinstance(value, (str, int)):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return path, f"is {value!r}, which JSON cannot represent"
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            problem = _find_problem(item, f"{path}[{index}]")
            if problem is not None:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                key_type = type(key).__name__
                return path, f"has a key {key!r} of type {key_type}; JSON keys are strings"
            problem = _find_problem(item, f"{path}[{key!r}]")
            if problem is not None:
                return problem
        return None
    kind = type(value).__name__
    hint = _HINTS.get(kind)
    suffix = f" ({hint})" if hint else ""
    return path, (
        f"is a {kind}, which is not JSON-serialisable{suffix}; "
        "job data must be str, int, float, bool, None, list or dict"
    )
