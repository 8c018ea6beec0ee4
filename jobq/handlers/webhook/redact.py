"""What of a webhook URL may be shown: its scheme, host and port, never the rest.

A receiver's URL often carries a credential in its path, query, fragment or
user information (``/hooks/acme?token=...``, ``https://user:pw@...``). Job
errors, the tracebacks stored with them and the worker's log lines show only
:func:`origin`. The text of requests' and urllib3's exceptions, and a
receiver's answer, hold the URL in several spellings (as given, as requests
re-quotes it, only the path and query after ``with url:``); :class:`UrlRedactor`
removes each of them, and cuts any other URL it meets (a redirect's target) to
its origin. urllib3 also logs each request's path and query at DEBUG level;
:func:`redacted_urllib3_logs` hides them while a delivery runs.

This module knows nothing of jobs or of the network.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from requests.utils import requote_uri

__all__ = ["REDACTED", "UrlRedactor", "origin", "redacted_urllib3_logs"]

REDACTED = "[redacted]"
"""What stands in the place of a URL's path, query, fragment or user information."""

_MIN_SECRET = 4
"""Characters a part of a URL needs to be searched for: shorter ones (``/``, ``/a``)
carry no secret, and replacing them would garble unrelated words."""

# RFC 3986 appendix B: splits any string, even one urllib cannot parse.
_URL_PARTS = re.compile(
    r"(?:(?P<scheme>[^:/?#]+):)?(?://(?P<authority>[^/?#]*))?"
    r"(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?(?:#(?P<fragment>.*))?",
    re.DOTALL,
)
_ANY_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*")
_REQUEST_TARGET = re.compile(r"(with url: )\S+")  # urllib3's MaxRetryError


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url`` (the port only when the URL names one);
    ``"(invalid URL)"`` when ``url`` cannot be read."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except (TypeError, ValueError):
        return "(invalid URL)"
    if not parts.scheme and not host:
        return "(invalid URL)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}"


def _spellings(url: str) -> list[str]:
    """``url`` as given and as requests sends it (IDNA host, re-quoted path)."""
    forms = [url, requote_uri(url)]
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
    except (requests.RequestException, ValueError, UnicodeError):
        pass
    else:
        if prepared.url:
            forms.append(prepared.url)
    return list(dict.fromkeys(forms))


def _secret_parts(url: str) -> set[str]:
    match = _URL_PARTS.fullmatch(url)
    assert match is not None  # every group is optional: any string matches
    authority = match["authority"] or ""
    path, query, fragment = match["path"], match["query"], match["fragment"]
    userinfo = authority.rpartition("@")[0] if "@" in authority else ""
    rest = url[match.end("authority") :] if match["authority"] is not None else path
    parts = {path, rest, userinfo, f"{userinfo}@", *userinfo.split(":", 1)}
    if query is not None:
        parts |= {query, f"?{query}", f"{path}?{query}"}
    if fragment is not None:
        parts |= {fragment, f"#{fragment}"}
    return parts


def _variants(part: str) -> set[str]:
    """``part`` as it may appear in a message: decoded, re-quoted, inside a repr."""
    plain = {part, urllib.parse.unquote(part), requote_uri(part)}
    return plain | {repr(p)[1:-1] for p in plain}


class UrlRedactor:
    """Removes what must not be shown of one URL from text about it.

    :param url: the URL a delivery goes to (anything: a job's payload may hold
        a number where a URL should be).
    :ivar origin: what may be shown of it, as :func:`origin` gives.

    ``redactor(text)`` returns ``text`` with every spelling of the whole URL
    replaced by its origin and every spelling of its path, query, fragment
    and user information by :data:`REDACTED`. :meth:`foreign` does more, for
    text from outside (an exception, a receiver's answer).
    """

    def __init__(self, url: object) -> None:
        self._url = url if isinstance(url, str) else ""
        self.origin = origin(self._url)

    @functools.cached_property
    def _replacements(self) -> tuple[list[str], list[str]]:
        # Worked out on first use: a delivery that succeeds never needs them.
        spellings = _spellings(self._url) if self._url else []
        wholes = sorted((w for w in spellings if len(w) >= _MIN_SECRET), key=len, reverse=True)
        secrets = {v for s in spellings for p in _secret_parts(s) for v in _variants(p)}
        # Longest first, so that no part is left half replaced. A part the origin
        # spells ("hooks" of "https://hooks@hooks.example.com") is shown anyway.
        parts = sorted(
            (s for s in secrets if len(s) >= _MIN_SECRET and s not in self.origin),
            key=len,
            reverse=True,
        )
        return wholes, parts

    def __call__(self, text: str) -> str:
        wholes, parts = self._replacements
        for whole in wholes:
            text = text.replace(whole, self.origin)
        for part in parts:
            text = text.replace(part, REDACTED)
        return text

    def foreign(self, text: str) -> str:
        """``self(text)``, then any other URL cut to its origin and urllib3's
        ``with url: <path>`` redacted: for text this module did not write."""
        text = self(text)
        text = _ANY_URL.sub(_origin_of_match, text)
        return _REQUEST_TARGET.sub(rf"\g<1>{REDACTED}", text)


def _origin_of_match(match: re.Match[str]) -> str:
    found = match.group().split(REDACTED, 1)[0]
    core = found.rstrip(".,:;)")
    shown = origin(core)
    return shown + found[len(core) :] if shown != "(invalid URL)" else REDACTED


# -- urllib3's own log records -----------------------------------------------------------

_URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.poolmanager", "urllib3.util.retry")
_delivering = threading.local()


class _RedactDuringDelivery(logging.Filter):
    """Rewrites urllib3's records made in a thread inside :func:`redacted_urllib3_logs`:
    an argument that is a request target (``/hooks/acme?token=...``) becomes
    :data:`REDACTED`, other text arguments go through :meth:`UrlRedactor.foreign`.
    The format string is urllib3's own and left alone. Other threads' records pass
    unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        redactor: UrlRedactor | None = getattr(_delivering, "redactor", None)
        if redactor is not None and isinstance(record.args, tuple):
            record.args = tuple(
                (REDACTED if arg.startswith("/") else redactor.foreign(arg))
                if isinstance(arg, str)
                else arg
                for arg in record.args
            )
        return True


_FILTER = _RedactDuringDelivery()


@contextmanager
def redacted_urllib3_logs(redactor: UrlRedactor) -> Iterator[None]:
    """While inside, urllib3's log records made by this thread (``"POST /path?query
    HTTP/1.1" 200``, at DEBUG level) show no path or query. Records of other
    threads, and of this one outside, are left alone."""
    for name in _URLLIB3_LOGGERS:
        logging.getLogger(name).addFilter(_FILTER)  # once: addFilter skips a repeat
    previous = getattr(_delivering, "redactor", None)
    _delivering.redactor = redactor
    try:
        yield
    finally:
        _delivering.redactor = previous
