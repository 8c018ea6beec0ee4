"""JSON encoding of job payloads and results. Never pickle: stored data is never code.

What goes in comes back out the same (tuples come back as lists): strings,
numbers, booleans, None, lists and dicts with string keys. Anything else is
refused before it is written, with the path to the offending value: other
types, NaN and infinities, text with a lone surrogate (it has no UTF-8 form),
an int longer than Python's int-to-text limit, and lists or dicts nested more
than :data:`MAX_DEPTH` deep (a value that contains itself is one).
"""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import PayloadError

MAX_DEPTH = 128
"""Deepest nesting of lists and dicts accepted (as serde_json's default limit):
far beyond real job data, and shallow enough that encoding and decoding never
reach Python's recursion limit, even in a deep call stack."""

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
    problem = _find_problem(value, name, 0)
    if problem is None:
        try:
            text = _encoder.encode(value)
        except ValueError:  # an int beyond sys.get_int_max_str_digits()
            text = None
        # isascii() is O(1): only text with non-ASCII characters is checked for
        # lone surrogates, which have no UTF-8 form and no place in a database.
        if text is not None and (text.isascii() or _is_utf8(text)):
            return text
        problem = _find_unwritable(value, name)
    if problem is None:  # pragma: no cover - every failure above has a culprit
        problem = name, "cannot be written as JSON"
    path, message = problem
    shown = path[:80] + "[...]" if message is _TOO_DEEP else path  # mostly [0][0][0]...
    raise PayloadError(f"{shown} {message}", path)


PLAIN = frozenset({str, int, bool, type(None)})
"""Types whose values JSON holds exactly, with nothing inside to check."""

_PLAIN_TEXT: dict[type, Any] = {
    str: json.encoder.encode_basestring,  # what the encoder uses with ensure_ascii=False
    int: int.__repr__,
    bool: lambda value: "true" if value else "false",
    type(None): lambda value: "null",
}


def encode_plain_args(args: Any, *, name: str = "payload") -> str:
    """``encode({"args": list(args), "kwargs": {}}, name=name)`` for args whose types
    are all in :data:`PLAIN` (the caller checked), without the encoder's per-call setup.
    Raises :class:`~jobq.errors.PayloadError` as :func:`encode` does."""
    try:
        text = '{"args":[' + ",".join([_PLAIN_TEXT[type(v)](v) for v in args]) + '],"kwargs":{}}'
    except ValueError:  # an int beyond sys.get_int_max_str_digits()
        text = ""
    if text and (text.isascii() or _is_utf8(text)):
        return text
    return encode({"args": list(args), "kwargs": {}}, name=name)


def decode(text: str) -> Any:
    """Parse JSON written by :func:`encode`."""
    return json.loads(text)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_TOO_DEEP = (
    f"is nested more than {MAX_DEPTH} lists or dicts deep (or contains itself); pass flatter data"
)


def _find_problem(value: Any, path: str, depth: int) -> tuple[str, str] | None:
    # Walk before encoding: json.dumps would silently turn {1: "a"} into {"1": "a"}
    # and its own errors do not say where the bad value is.
    if value is None or isinstance(value, (str, int)):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return path, f"is {value!r}, which JSON cannot represent"
    if isinstance(value, (list, tuple)):
        if depth == MAX_DEPTH:
            return path, _TOO_DEEP
        for index, item in enumerate(value):
            problem = _find_problem(item, f"{path}[{index}]", depth + 1)
            if problem is not None:
                return problem
        return None
    if isinstance(value, dict):
        if depth == MAX_DEPTH:
            return path, _TOO_DEEP
        for key, item in value.items():
            if not isinstance(key, str):
                key_type = type(key).__name__
                return path, f"has a key {key!r} of type {key_type}; JSON keys are strings"
            problem = _find_problem(item, f"{path}[{key!r}]", depth + 1)
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


def _find_unwritable(value: Any, path: str) -> tuple[str, str] | None:
    """The text or int that the encoder or UTF-8 could not write (a value that
    :func:`_find_problem` passed, so every type here is a JSON one)."""
    if isinstance(value, str):
        if _is_utf8(value):
            return None
        where = _surrogate(value)
        return path, f"is text with a lone surrogate ({where}), which has no UTF-8 form"
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            int.__repr__(value)
        except ValueError as exc:
            return path, f"is an int too long to write as text ({exc})"
        return None
    items: Any = ()
    if isinstance(value, (list, tuple)):
        items = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    elif isinstance(value, dict):
        for key in value:
            if not _is_utf8(key):
                where = _surrogate(key)
                return path, f"has a key with a lone surrogate ({where}), which has no UTF-8 form"
        items = ((f"{path}[{key!r}]", item) for key, item in value.items())
    for item_path, item in items:
        problem = _find_unwritable(item, item_path)
        if problem is not None:
            return problem
    return None


def _surrogate(text: str) -> str:
    for index, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            return f"U+{ord(char):04X} at index {index}"
    return "?"  # pragma: no cover
