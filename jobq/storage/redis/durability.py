"""Whether a Redis server keeps the jobs it accepted: checked when a
:class:`~jobq.storage.redis.RedisStorage` opens.

Redis acknowledges a write before it is on disk unless it runs with
``appendonly yes`` and ``appendfsync always``: with ``everysec`` up to a second
of enqueues can be lost on power loss, without the append-only file everything
since the last snapshot. And a ``maxmemory-policy`` other than ``noeviction``
lets the server delete keys (jobs) silently when memory runs short; that is
always refused.

Rule: pure decisions on the server's settings; imports the storage contract's
errors only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from ..base import StorageError

Durability = Literal["warn", "refuse", "ignore"]
"""What to do when a crash of the server could lose accepted jobs."""

SETTINGS = ("appendonly", "appendfsync", "maxmemory-policy")
"""The server settings read (``CONFIG GET``) when a storage opens."""


def judge(settings: Mapping[str, str], durability: Durability) -> str | None:
    """The warning to give for the server's ``settings`` (as ``CONFIG GET`` returns
    them; empty when the server refuses ``CONFIG``), or None when there is none.

    Raises :class:`StorageError` for an eviction policy, and, with
    ``durability="refuse"``, for settings that could lose accepted jobs (or that
    cannot be read)."""
    policy = settings.get("maxmemory-policy")
    if policy is not None and policy != "noeviction":
        raise StorageError(
            f"the Redis server's maxmemory-policy is {policy!r}: it may delete jobs when "
            "memory runs short; set it to 'noeviction' (CONFIG SET maxmemory-policy noeviction)"
        )
    if durability == "ignore":
        return None
    if not settings:
        problem = "its persistence settings cannot be read (CONFIG GET is not allowed)"
    elif settings.get("appendonly") != "yes":
        problem = "appendonly is off: a crash loses the jobs accepted since the last snapshot"
    elif settings.get("appendfsync") == "everysec":
        problem = (
            "appendfsync is 'everysec': a power loss or OS crash can lose the jobs accepted "
            "in the last second"
        )
    elif settings.get("appendfsync") != "always":
        problem = (
            f"appendfsync is {settings.get('appendfsync')!r}: a power loss or OS crash can lose "
            "the jobs the OS has not written to disk yet (often the last 30 seconds)"
        )
    else:
        return None
    message = (
        f"the Redis server may lose accepted jobs: {problem}. Run it with appendonly yes "
        "and appendfsync always, or open the storage with durability='ignore' (in a URL: "
        "?durability=ignore) if that is acceptable"
    )
    if durability == "refuse":
        raise StorageError(message)
    return message
