"""A Redis database for one test, opened through a ``redis://`` URL as users
open it: :func:`redis_url` gives the test server's URL with jobq's options in its
query, a key prefix of the test's own, and removes the prefix's keys afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from tests.helpers import drop_redis_prefix, redis_test_prefix, require_redis


def options_url(prefix: str) -> str:
    """The test server's URL with ``prefix`` and ``durability=ignore`` (the
    throwaway server keeps nothing on disk, which would warn) in its query."""
    base = require_redis()
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}prefix={quote(prefix, safe='')}&durability=ignore"


@contextmanager
def redis_url() -> Iterator[str]:
    """A URL to a fresh, empty database of keys (skips without a server)."""
    prefix = redis_test_prefix()
    try:
        yield options_url(prefix)
    finally:
        drop_redis_prefix(prefix)
