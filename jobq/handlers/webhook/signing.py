"""Signing deliveries the Standard Webhooks way, and checking them as a receiver.

Rule: pure functions of a secret, headers and a body; this module sends
nothing and knows nothing of jobs, settings or the network.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Iterable
from typing import Any, Protocol

from ...errors import JobqError
from ...validate import is_number

__all__ = [
    "HeaderLookup",
    "WebhookVerificationError",
    "generate_secret",
    "secret_bytes",
    "sign",
    "verify",
]


class WebhookVerificationError(JobqError, ValueError):
    """:func:`verify` found a delivery not signed with the secret, too old, or malformed."""


def generate_secret() -> str:
    """A new random signing secret in the Standard Webhooks form ``whsec_<base64 of 32 bytes>``."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_bytes(secret: str | bytes) -> bytes:
    """The HMAC key of ``secret``: ``whsec_<base64>`` decoded, other text as UTF-8,
    bytes as they are. Raises ValueError for bad base64 or fewer than 16 bytes."""
    if isinstance(secret, bytes):
        key = secret
    elif isinstance(secret, str):
        if secret.startswith("whsec_"):
            try:
                key = base64.b64decode(secret[len("whsec_") :], validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(
                    "secret starts with 'whsec_' but the rest is not valid base64"
                ) from None
        else:
            key = secret.encode()
    else:
        raise ValueError(f"secret must be a string, bytes or None, got {type(secret).__name__}")
    if len(key) < 16:
        raise ValueError(
            f"secret must hold at least 16 bytes of key, got {len(key)}; "
            "make one with jobq.handlers.webhook.generate_secret()"
        )
    return key


def sign(secret: str | bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for a delivery: ``v1,<base64 HMAC-SHA256>`` of
    ``f"{message_id}.{timestamp}.{body}"`` with the key of ``secret``."""
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class HeaderLookup(Protocol):
    """What :func:`verify` needs of headers: a dict, Flask's ``request.headers``..."""

    def get(self, key: str, /) -> str | None: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


_MAX_TIMESTAMP_DIGITS = 18
"""Digits a ``webhook-timestamp`` may have: today's has 10; more than 18 would not
fit a float exactly, and any such time is far outside every tolerance anyway."""


def _header(headers: HeaderLookup, name: str) -> str:
    value = headers.get(name)
    if value is None:  # a plain dict with other capitals
        value = next(
            (v for k, v in headers.items() if isinstance(k, str) and k.lower() == name), None
        )
    if value is None:
        raise WebhookVerificationError(f"the {name} header is missing")
    if not isinstance(value, str):
        raise WebhookVerificationError(f"the {name} header is not text")
    return value


def _timestamp(headers: HeaderLookup) -> int:
    stamp = _header(headers, "webhook-timestamp").strip()
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > _MAX_TIMESTAMP_DIGITS:
        shown = repr(stamp) if len(stamp) <= 40 else f"{stamp[:40]!r}... ({len(stamp)} characters)"
        raise WebhookVerificationError(
            f"webhook-timestamp {shown} is not a Unix time in integer seconds"
        )
    return int(stamp)


def verify(
    secret: str | bytes,
    headers: HeaderLookup,
    body: bytes | str,
    *,
    tolerance: float = 300,
    now: float | None = None,
) -> Any:
    """Check a delivery as a receiver and return its decoded JSON payload.

    :param secret: the sender's secret, in any form :class:`WebhookSettings` accepts.
    :param headers: the request's headers (any capitalisation), e.g. Flask's
        ``request.headers``.
    :param body: the raw request body, exactly as received (``request.get_data()``),
        never a re-encoded copy of parsed JSON.
    :param tolerance: seconds the ``webhook-timestamp`` may differ from ``now``
        either way, >= 0. Default 300: older deliveries are refused, so a
        captured one cannot be replayed later.
    :param now: the current time in epoch seconds; default :func:`time.time`.

    The ``webhook-signature`` header may hold several space-separated
    signatures (``v1,... v1,...``, as during a secret rotation); one valid
    ``v1`` signature is enough. Comparisons take constant time.
    Raises :class:`WebhookVerificationError` (a ValueError) otherwise, and for
    any malformed header (a ``webhook-timestamp`` that is not 1 to 18 ASCII
    digits...), never another error a receiver would answer 500 for.
    Raises ValueError for a ``tolerance`` below 0 or not a number, and a ``now``
    that is not a finite number.
    """
    if not is_number(tolerance) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a number of seconds >= 0, got {tolerance!r}")
    raw = body.encode() if isinstance(body, str) else bytes(body)
    message_id = _header(headers, "webhook-id")
    timestamp = _timestamp(headers)
    current = time.time() if now is None else now
    if not is_number(current) or not math.isfinite(current):
        raise ValueError(f"now must be a finite number of epoch seconds, got {now!r}")
    _check_age(timestamp, current, tolerance)
    _check_signature(secret, headers, message_id, timestamp, raw)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise WebhookVerificationError(f"the signed body is not JSON: {exc}") from None


def _check_age(timestamp: int, current: float, tolerance: float) -> None:
    if timestamp < current - tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp is {current - timestamp:.0f} s old, more than the "
            f"tolerance of {tolerance:g} s"
        )
    if timestamp > current + tolerance:
        raise WebhookVerificationError(
            f"webhook-timestamp is {timestamp - current:.0f} s in the future, more than the "
            f"tolerance of {tolerance:g} s"
        )


def _check_signature(
    secret: str | bytes, headers: HeaderLookup, message_id: str, timestamp: int, raw: bytes
) -> None:
    """Raise WebhookVerificationError unless one ``v1`` signature of the headers is
    the one ``secret`` makes."""
    try:
        expected = sign(secret, message_id, timestamp, raw).encode()
    except UnicodeEncodeError:  # a lone surrogate: no sender signed that
        raise WebhookVerificationError("the webhook-id header is not valid text") from None
    offered = _header(headers, "webhook-signature").split()
    matched = False
    for signature in offered:
        if signature.startswith("v1,"):
            # Compare every one (no early exit), each in constant time.
            matched |= hmac.compare_digest(expected, signature.encode(errors="replace"))
    if not matched:
        raise WebhookVerificationError(
            "no valid v1 signature in the webhook-signature header "
            "(wrong secret, or the body or headers were changed)"
        )
