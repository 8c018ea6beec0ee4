"""jobq's own options in a Redis URL: ``?prefix=...`` and ``?durability=...``,
taken out of the URL before redis-py reads it (redis-py passes every query
parameter it does not know to its connections, which refuse them).

::

    redis://cache.internal:6379/0?prefix=shop:&durability=refuse

Every other query parameter (``socket_timeout``, ``ssl_cert_reqs``, ...) stays in
the URL for redis-py.

Rule: pure text; imports nothing from redis.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

OPTIONS = ("prefix", "durability")
"""The query parameters that are jobq's, not redis-py's."""


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """The URL without jobq's query parameters, and those parameters by name
    (percent-decoded). Raises ValueError for a parameter given twice."""
    base, sep, rest = url.partition("?")
    if not sep:
        return url, {}
    query, hash_sign, fragment = rest.partition("#")
    kept: list[str] = []
    found: dict[str, str] = {}
    for piece in query.split("&"):
        name, _, value = piece.partition("=")
        name = unquote_plus(name)
        if name not in OPTIONS:
            if piece:
                kept.append(piece)
            continue
        if name in found:
            raise ValueError(f"the Redis URL gives {name!r} twice")
        found[name] = unquote_plus(value)
    clean = base + ("?" + "&".join(kept) if kept else "") + hash_sign + fragment
    return clean, found
