"""The arguments of a delivery that no attempt could send, refused in words for
the caller: extra headers, the ``webhook-id`` and the event type.

Rule: pure checks of values; this module knows nothing of jobs or the network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["check_request"]

_RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
        "content-length",
        "transfer-encoding",
        "host",
        "connection",
    }
)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)
_MESSAGE_ID = re.compile(r"[!-~]{1,256}")  # printable ASCII, no spaces


def check_request(headers: object, message_id: object, event_type: object) -> None:
    """Raise ValueError, in words for the caller, for arguments no attempt could send."""
    _check_headers(headers)
    if message_id is not None and (
        not isinstance(message_id, str) or not _MESSAGE_ID.fullmatch(message_id)
    ):
        raise ValueError(
            f"message_id must be 1 to 256 printable ASCII characters without spaces, "
            f"got {message_id!r}"
        )
    if event_type is not None and (not isinstance(event_type, str) or not event_type):
        raise ValueError(f"event_type must be a non-empty string, got {event_type!r}")


def _check_headers(headers: object) -> None:
    if headers is not None and not isinstance(headers, Mapping):
        raise ValueError(
            f"headers must be a dict of header names to values, got {type(headers).__name__}"
        )
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set by the webhook handler itself")
        _check_header_value(name, value)


def _check_header_value(name: str, value: object) -> None:
    # The value itself is never quoted back: headers often carry credentials.
    if not isinstance(value, str):
        raise ValueError(f"header {name!r} must be a string, got {type(value).__name__}")
    if any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in value):
        raise ValueError(f"header {name!r} must be a string without control characters")
    if value[:1].isspace():
        raise ValueError(f"header {name!r} must not start with white space")
    position, char = next(((i, c) for i, c in enumerate(value) if ord(c) > 0xFF), (0, ""))
    if char:
        raise ValueError(
            f"header {name!r} holds U+{ord(char):04X} at position {position}, which an HTTP "
            "header cannot carry: values are Latin-1 text (ASCII is safest); percent-encode "
            "or base64-encode other text"
        )
