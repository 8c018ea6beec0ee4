"""What an answer, or its absence, means for a delivery: done, tried again (and
when), or failed for good.

Rule: pure functions of a status, a header or an exception; this module sends
nothing and knows nothing of jobs.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable
from datetime import timezone

import requests
import urllib3.exceptions

from ...errors import Fail, JobqError, TransientError
from .redact import UrlRedactor
from .settings import MAX_REDIRECTS

__all__ = ["classify_error", "classify_status", "parse_retry_after"]

_RETRIED_STATUSES = frozenset({408, 425, 429})
"""4xx statuses that mean "not now" rather than "never": Request Timeout, Too Early,
Too Many Requests. Every 5xx is retried too."""


def classify_status(status: int) -> str:
    """What an HTTP status means for a delivery: ``"completed"`` (2xx), ``"retry"``
    (408, 425, 429, 5xx) or ``"fail"`` (anything else, 3xx included)."""
    if 200 <= status < 300:
        return "completed"
    if status in _RETRIED_STATUSES or 500 <= status < 600:
        return "retry"
    return "fail"


def parse_retry_after(value: str | None, *, now: float, cap: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date),
    at least 0 and at most ``cap``; None when absent or unreadable. ``now`` is
    the current epoch time, for dates."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": UTC, as HTTP dates are
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - now
    return min(max(seconds, 0.0), cap)


_POOL_PREFIX = re.compile(r"\w+\(host=[^)]*\): ")  # urllib3's "HTTPConnectionPool(host=...): "
_ANY_URL_REDACTED = UrlRedactor(None).foreign


def _reason(error: requests.RequestException) -> str:
    """What urllib3 says went wrong, without the pool, connection and request
    target it wraps that in (``Max retries exceeded with url: /path?query``)."""
    cause: BaseException = error
    inner = error.args[0] if error.args else None
    if isinstance(inner, urllib3.exceptions.MaxRetryError) and inner.reason is not None:
        inner = inner.reason
    if isinstance(inner, BaseException):
        cause = inner
    args = cause.args
    # Some urllib3 errors hold (connection, message): the message is the news.
    text = args[1] if len(args) == 2 and isinstance(args[1], str) else str(cause)
    return _POOL_PREFIX.sub("", text)


def classify_error(
    error: requests.RequestException,
    where: str,
    *,
    redact: Callable[[str], str] = _ANY_URL_REDACTED,
) -> JobqError:
    """The jobq error for a request that got no answer: :class:`~jobq.TransientError`
    for timeouts and lost or refused connections (DNS failures included),
    :class:`~jobq.Fail` for invalid URLs, untrusted certificates and redirect loops.

    The message names ``where`` (show only an origin, ``scheme://host:port``)
    and the cause, passed through ``redact``; by default any URL in the cause
    is cut to its origin.
    """
    full = str(error)
    reason = redact(_reason(error))
    if isinstance(error, requests.exceptions.SSLError):
        if "CERTIFICATE_VERIFY_FAILED" in full or "certificate verify failed" in full:
            return Fail(f"the TLS certificate of {where} is not trusted: {reason}")
        return TransientError(f"TLS with {where} failed: {reason}")
    if isinstance(error, requests.Timeout):
        return TransientError(f"webhook to {where} timed out: {reason}")
    if isinstance(error, requests.ConnectionError):
        return TransientError(f"cannot reach {where}: {reason}")
    if isinstance(error, requests.TooManyRedirects):
        return Fail(f"webhook to {where} was redirected more than {MAX_REDIRECTS} times")
    if isinstance(error, (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema)):
        return Fail(f"refused: webhook to {where} uses a URL scheme that is not allowed: {reason}")
    if isinstance(
        error, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)
    ):
        return TransientError(f"webhook to {where}: broken answer: {reason}")
    return Fail(f"webhook to {where} failed: {reason}")
