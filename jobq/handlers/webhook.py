"""Signed webhooks from jobs: ``install(queue, settings)`` registers ``jobq.webhook.deliver``.

::

    from jobq.handlers import webhook

    deliver = webhook.install(queue, webhook.WebhookSettings(
        secret=os.environ["WEBHOOK_SECRET"],          # "whsec_..." (Standard Webhooks)
    ))
    deliver.enqueue("https://hooks.example.com/orders", {"order": 42, "state": "paid"},
                    event_type="order.paid")

Each job POSTs its payload as compact JSON, signed the Standard Webhooks way
(``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers);
receivers check it with :func:`verify`. The ``webhook-id`` is the same for every
attempt of a job, so receivers can drop a copy delivered twice.

The answer decides what happens next: a 2xx status completes the job; a lost
or refused connection, a timeout, 408, 425, 429 and 5xx raise
:class:`~jobq.TransientError` (tried again with backoff, or after the
``Retry-After`` the receiver asked for, up to ``max_attempts``); any other status
(other 4xx, and 3xx since redirects are not followed by default), an invalid
URL and a destination the SSRF guard refuses fail the job at once
(:class:`~jobq.Fail`).

The SSRF guard (:mod:`jobq.handlers._netguard`) is always on: a job can only
reach public addresses, checked on the very address connected to, unless the
host is in ``allow_hosts``. Proxies from environment variables are not used.

This module needs ``requests`` (``pip install 'jobq[webhooks]'``); jobq's core does not.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import email.utils
import hashlib
import hmac
import inspect
import json
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol

try:
    import requests
    import requests.adapters
    import urllib3.exceptions
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "jobq.handlers.webhook needs the 'requests' package; install it with "
        "pip install 'jobq[webhooks]'"
    ) from exc

from .. import __version__, codec
from ..context import JobContext, current_job
from ..errors import ConfigurationError, Fail, JobqError, TransientError
from ..tasks import Task
from . import installed, remove_installed, replace_installed, retry_backoff, settings_from_mapping
from ._netguard import DestinationRefused, NetGuard, Resolver, guarded_adapter, system_resolver
from ._redact import UrlRedactor, redacted_urllib3_logs

if TYPE_CHECKING:
    from ..queue import DurableQueue

__all__ = [
    "EXTENSION_KEY",
    "TASK_NAME",
    "DestinationRefused",
    "WebhookDeliverer",
    "WebhookSettings",
    "WebhookVerificationError",
    "classify_status",
    "deliver_webhook",
    "generate_secret",
    "install",
    "parse_retry_after",
    "sign",
    "uninstall",
    "verify",
]

EXTENSION_KEY = "jobq.webhook"
"""Key of the :class:`WebhookDeliverer` in ``queue.extensions``."""

TASK_NAME = "jobq.webhook.deliver"
"""Name the task is registered under; jobs refer to it."""

_RETRIED_STATUSES = frozenset({408, 425, 429})
"""4xx statuses that mean "not now" rather than "never": Request Timeout, Too Early,
Too Many Requests. Every 5xx is retried too."""

_RESERVED_HEADERS = frozenset({
    "webhook-id", "webhook-timestamp", "webhook-signature", "content-type",
    "content-length", "transfer-encoding", "host", "connection",
})
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)
_MESSAGE_ID = re.compile(r"[!-~]{1,256}")  # printable ASCII, no spaces
_MAX_REDIRECTS = 5


# -- settings --------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookSettings:
    """How webhooks are signed and sent. Every field has a safe default.

    :param secret: signing secret. ``"whsec_<base64>"`` (the Standard Webhooks
        form, as :func:`generate_secret` makes) is base64-decoded; any other
        string is used as its UTF-8 bytes, and bytes as they are. At least 16
        bytes of key. Default None: requests are sent unsigned, which lets
        anyone who learns a receiver's URL forge deliveries; signing is
        recommended. Never shown in ``repr``.
    :param connect_timeout: seconds to wait for a connection, > 0. Default 5.
    :param read_timeout: seconds to wait for each read of the answer (not the
        whole answer), > 0. Default 30.
    :param max_attempts: attempts per webhook before its job fails, >= 1. Default 8.
    :param retry_delay: seconds before the second attempt, > 0; each later one
        waits twice as long (with jitter: between half and all of it), at most
        an hour. Default 30, so 8 attempts span about half an hour to an hour.
    :param allow_hosts: host names (exact, case-insensitive), IP addresses and
        CIDR networks (``"10.1.0.0/16"``) that the SSRF guard lets through
        although they are not public, e.g. an internal service. Default empty.
    :param allowed_schemes: URL schemes jobs may use, among ``"https"`` and
        ``"http"``. Default both; ``("https",)`` to require TLS.
    :param follow_redirects: follow 3xx answers (at most 5 hops, each checked
        by the SSRF guard). Default False: a 3xx answer fails the job.
    :param max_response_excerpt: bytes of the receiver's answer kept in the
        job's result or error message, >= 0. Default 2048.
    :param user_agent: the ``User-Agent`` header, Latin-1 text. Default
        ``"jobq-webhook/<version>"``.
    :param max_retry_after: cap, in seconds >= 0, on a ``Retry-After`` the
        receiver asks for; longer requests wait this long. Default 3600.
    :param verify_tls: check the receiver's TLS certificate and host name
        (default True). Turn off only for a test server.
    :param cafile: PEM file of the certificate authorities to trust (e.g. a
        private CA), instead of requests' bundle (certifi). Default None.
        ``REQUESTS_CA_BUNDLE`` and the like are ignored (see ``trust_env``).
    """

    secret: str | bytes | None = dataclasses.field(default=None, repr=False)
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 8
    retry_delay: float = 30.0
    allow_hosts: tuple[str, ...] = ()
    allowed_schemes: tuple[str, ...] = ("https", "http")
    follow_redirects: bool = False
    max_response_excerpt: int = 2048
    user_agent: str = f"jobq-webhook/{__version__}"
    max_retry_after: float = 3600.0
    verify_tls: bool = True
    cafile: str | None = None

    def __post_init__(self) -> None:
        if self.secret is not None:
            secret_bytes(self.secret)  # raises ValueError
        for name in ("connect_timeout", "read_timeout", "retry_delay"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a number of seconds above 0, got {value!r}")
        if not _is_number(self.max_retry_after) or not 0 <= self.max_retry_after < math.inf:
            raise ValueError(
                f"max_retry_after must be a number of seconds >= 0, got {self.max_retry_after!r}"
            )
        if not _is_int(self.max_attempts) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts!r}")
        if not _is_int(self.max_response_excerpt) or self.max_response_excerpt < 0:
            raise ValueError(
                f"max_response_excerpt must be an integer >= 0, got {self.max_response_excerpt!r}"
            )
        hosts = _as_tuple(self.allow_hosts, "allow_hosts")
        for entry in hosts:
            NetGuard([entry])  # raises ValueError naming the bad entry
        object.__setattr__(self, "allow_hosts", hosts)  # a list from a config file
        schemes = tuple(s.lower() if isinstance(s, str) else s for s in
                        _as_tuple(self.allowed_schemes, "allowed_schemes"))
        if not schemes or any(s not in ("http", "https") for s in schemes):
            raise ValueError(
                f"allowed_schemes must name 'https' and/or 'http', got {self.allowed_schemes!r}"
            )
        object.__setattr__(self, "allowed_schemes", schemes)
        for name in ("follow_redirects", "verify_tls"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.cafile is not None:
            if not self.verify_tls:
                raise ValueError("cafile is only used with verify_tls=True")
            if not isinstance(self.cafile, str) or not os.path.isfile(self.cafile):
                raise ValueError(f"cafile {self.cafile!r} is not a file")
        if not isinstance(self.user_agent, str) or not self.user_agent or any(
            ord(c) < 0x20 or c == "\x7f" or ord(c) > 0xFF for c in self.user_agent
        ):
            raise ValueError(
                f"user_agent must be a non-empty Latin-1 string without control characters "
                f"(an HTTP header carries nothing else), got {self.user_agent!r}"
            )

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> WebhookSettings:
        """Settings from a plain mapping such as ``app.config["JOBQ_WEBHOOK"]``.

        Raises :class:`~jobq.ConfigurationError` naming any unknown key or bad value.
        """
        return settings_from_mapping(cls, mapping, "JOBQ_WEBHOOK")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_tuple(value: object, name: str) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list of strings, got {value!r}; for one write (x,)")
    return tuple(value)


# -- signing ---------------------------------------------------------------------------


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
                key = base64.b64decode(secret[len("whsec_"):], validate=True)
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
        value = next((v for k, v in headers.items()
                      if isinstance(k, str) and k.lower() == name), None)
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
    if not _is_number(tolerance) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a number of seconds >= 0, got {tolerance!r}")
    raw = body.encode() if isinstance(body, str) else bytes(body)
    message_id = _header(headers, "webhook-id")
    timestamp = _timestamp(headers)
    current = time.time() if now is None else now
    if not _is_number(current) or not math.isfinite(current):
        raise ValueError(f"now must be a finite number of epoch seconds, got {now!r}")
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
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise WebhookVerificationError(f"the signed body is not JSON: {exc}") from None


# -- answers ---------------------------------------------------------------------------


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


# -- the deliverer ---------------------------------------------------------------------


class WebhookDeliverer:
    """Sends deliveries over one ``requests.Session`` per thread, kept between jobs.

    Every session mounts the SSRF guard's adapter for ``allowed_schemes`` only,
    ignores proxy and certificate settings from environment variables
    (``trust_env = False``) and follows redirects only if the settings say so.

    :param settings: the :class:`WebhookSettings`.
    :param resolver: ``resolver(host, port)`` returning :func:`socket.getaddrinfo`
        entries; default the system's. The addresses it returns are the ones
        checked by the guard and the ones connected to.
    :ivar guard: the :class:`~jobq.handlers._netguard.NetGuard` in use.
    """

    def __init__(self, settings: WebhookSettings, *, resolver: Resolver | None = None) -> None:
        self.settings = settings
        self.guard = NetGuard(settings.allow_hosts, settings.allowed_schemes,
                              resolver or system_resolver)
        self._key = None if settings.secret is None else secret_bytes(settings.secret)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: set[requests.Session] = set()

    def session(self) -> requests.Session:
        """This thread's session, made on first use."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxies, netrc or CA bundle from the environment
            session.max_redirects = _MAX_REDIRECTS
            session.adapters.clear()  # requests mounts unguarded adapters by default
            adapter = guarded_adapter(self.guard)
            for scheme in self.settings.allowed_schemes:
                session.mount(f"{scheme}://", adapter)
            session.headers["User-Agent"] = self.settings.user_agent
            with self._lock:
                self._sessions.add(session)
            self._local.session = session
        return session

    def headers(self, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The Standard Webhooks headers for one request (no signature without a secret)."""
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
        }
        if self._key is not None:
            headers["webhook-signature"] = sign(self._key, message_id, timestamp, body)
        return headers

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, str, str | None]:
        """POST ``body`` to ``url`` (checked by the guard first); return the status,
        an excerpt of the answer and its ``Retry-After`` header.

        Raises :class:`DestinationRefused` and requests' exceptions (whose text
        may spell the URL: :func:`deliver_webhook` redacts it). urllib3's log
        records of the request show no path or query.
        """
        self.guard.check_url(url)
        s = self.settings
        with redacted_urllib3_logs(UrlRedactor(url)):
            response = self.session().post(
                url, data=body, headers=dict(headers),
                timeout=(s.connect_timeout, s.read_timeout), allow_redirects=s.follow_redirects,
                verify=s.cafile or s.verify_tls, stream=True,
            )
            with response:
                excerpt = _read_excerpt(response, s.max_response_excerpt)
                return response.status_code, excerpt, response.headers.get("Retry-After")

    def close(self) -> None:
        """Close every thread's session and its connections. Call it once the workers
        stopped; the deliverer stays usable (a later delivery opens a new session)."""
        with self._lock:
            sessions, self._sessions = list(self._sessions), set()
        for session in sessions:
            session.close()
        self._local = threading.local()


def _read_excerpt(response: requests.Response, limit: int) -> str:
    if limit == 0:
        return ""
    data = b""
    try:
        for chunk in response.iter_content(chunk_size=min(limit + 1, 8192)):
            data += chunk
            if len(data) > limit:  # one byte more than kept: it was cut
                break
    except (requests.RequestException, OSError):
        pass  # the status already says how the delivery went; the excerpt is a courtesy
    text = data[:limit].decode("utf-8", errors="replace")
    return " ".join(text.split()) + ("..." if len(data) > limit else "")


# -- the task --------------------------------------------------------------------------


def _check_request(headers: object, message_id: object, event_type: object) -> None:
    """Raise ValueError, in words for the caller, for arguments no attempt could send."""
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
    if message_id is not None and (
        not isinstance(message_id, str) or not _MESSAGE_ID.fullmatch(message_id)
    ):
        raise ValueError(
            f"message_id must be 1 to 256 printable ASCII characters without spaces, "
            f"got {message_id!r}"
        )
    if event_type is not None and (not isinstance(event_type, str) or not event_type):
        raise ValueError(f"event_type must be a non-empty string, got {event_type!r}")


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


def deliver_webhook(
    url: str,
    payload: Any,
    *,
    event_type: str | None = None,
    headers: dict[str, str] | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """POST ``payload`` as JSON to ``url`` (the task ``jobq.webhook.deliver``;
    enqueue it through :func:`install`).

    :param url: the receiver, ``https://...`` (or ``http://...`` if allowed).
    :param payload: any JSON value; sent as compact UTF-8 JSON.
    :param event_type: when given, the body is the Standard Webhooks envelope
        ``{"type": event_type, "timestamp": "<enqueue time, ISO 8601 UTC>",
        "data": payload}`` instead of the bare payload.
    :param headers: extra request headers, e.g. ``{"Authorization": "Bearer ..."}``;
        not the ``webhook-*``, ``Content-Type`` or ``Host`` headers. Values are
        Latin-1 text without control characters or leading white space.
    :param message_id: the ``webhook-id`` (1 to 256 printable ASCII characters);
        default ``msg_<job id>_<digest of the job>``, the same for every attempt.

    Returns ``{"status": 200, "body": "<excerpt of the answer>", "attempt": 1,
    "message_id": "msg_..."}``. Raises :class:`~jobq.TransientError` for
    answers worth trying again (see :func:`classify_status`) and network
    errors, :class:`~jobq.Fail` for the rest, for invalid arguments and for
    destinations the SSRF guard refuses. Whatever went wrong, the error raised
    shows only the scheme, host and port of ``url`` and chains no other
    exception, so neither its message nor the traceback a worker stores with
    the job spells the URL's path, query, fragment or user information.
    """
    try:
        deliverer = installed(
            EXTENSION_KEY, WebhookDeliverer, "jobq.handlers.webhook.install(queue, settings)"
        )
    except ConfigurationError as exc:
        raise Fail(str(exc)) from exc
    context = current_job()
    redact = UrlRedactor(url)
    try:
        return _deliver(deliverer, context, url, payload, event_type, headers, message_id,
                        redact)  # fmt: skip
    except Exception as exc:  # its text, or an exception chained to it, may spell the URL
        failure = _job_error(exc, redact)
    # Raised outside the except clause, so that no exception is chained to it.
    raise failure from None


def _deliver(
    deliverer: WebhookDeliverer,
    context: JobContext,
    url: str,
    payload: Any,
    event_type: str | None,
    headers: dict[str, str] | None,
    message_id: str | None,
    redact: UrlRedactor,
) -> dict[str, Any]:
    job = context.job
    try:
        _check_request(headers, message_id, event_type)
        if event_type is not None:
            created = datetime.fromtimestamp(job.created_at, timezone.utc)
            payload = {"type": event_type, "timestamp": created.isoformat().replace("+00:00", "Z"),
                       "data": payload}
        body = codec.encode(payload).encode()
    except (ValueError, TypeError) as exc:
        raise Fail(f"cannot deliver this webhook: {exc}") from exc
    if message_id is None:
        digest = hashlib.sha256(f"{job.id}:{job.created_at!r}:{job.payload}".encode())
        message_id = f"msg_{job.id}_{digest.hexdigest()[:16]}"
    clock = context.queue.clock
    request_headers = dict(headers or {})
    request_headers.update(deliverer.headers(message_id, int(clock.now()), body))
    status, excerpt, retry_after = deliverer.post(url, body, request_headers)
    outcome = classify_status(status)
    if outcome == "completed":
        return {"status": status, "body": excerpt, "attempt": context.attempt,
                "message_id": message_id}
    answer = (f"webhook to {redact.origin} answered {status}: "
              f"{redact.foreign(excerpt) or '(empty body)'}")  # a 404 page may echo the URL
    if outcome == "retry":
        delay = parse_retry_after(retry_after, now=clock.now(),
                                  cap=deliverer.settings.max_retry_after)
        raise TransientError(answer, retry_after=delay)
    if 300 <= status < 400:
        answer += (" (a redirect: not followed since follow_redirects is False)"
                   if not deliverer.settings.follow_redirects else " (a redirect not followed)")
    raise Fail(answer)


def _job_error(error: Exception, redact: UrlRedactor) -> JobqError:
    """The error a delivery that raised ``error`` ends with, its text redacted.

    TransientError and Fail keep their class (and ``retry_after``); refusals of
    the guard fail; requests' errors are classified by :func:`classify_error`;
    text a request cannot carry (UnicodeError) fails, since no attempt would do
    better; any other exception is a TransientError, retried like any
    exception a task raises.
    """
    where = redact.origin
    if isinstance(error, TransientError):
        return TransientError(redact(str(error)), retry_after=error.retry_after)
    if isinstance(error, Fail):
        return Fail(redact(str(error)))
    if isinstance(error, DestinationRefused):
        return Fail(f"webhook to {where} {redact.foreign(str(error))}")
    if isinstance(error, requests.RequestException):
        return classify_error(error, where, redact=redact.foreign)
    text = redact.foreign(f"{type(error).__name__}: {error}")
    if isinstance(error, UnicodeError):
        return Fail(f"cannot deliver the webhook to {where}: {text}")
    return TransientError(f"webhook to {where} failed: {text}")


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
        return Fail(f"webhook to {where} was redirected more than {_MAX_REDIRECTS} times")
    if isinstance(error, (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema)):
        return Fail(f"refused: webhook to {where} uses a URL scheme that is not allowed: {reason}")
    if isinstance(error, (requests.exceptions.ChunkedEncodingError,
                          requests.exceptions.ContentDecodingError)):
        return TransientError(f"webhook to {where}: broken answer: {reason}")
    return Fail(f"webhook to {where} failed: {reason}")


_P = ParamSpec("_P")


class _WebhookTask(Task[_P, dict[str, Any]]):
    """The ``jobq.webhook.deliver`` task: checks ``headers``, ``message_id`` and
    ``event_type`` when a job is enqueued (by any door: ``enqueue``,
    ``enqueue_many``, ``options``, schedules, Flask's ``deliver_webhook``), so a
    bad one raises ValueError there and then instead of storing a job that can
    only fail."""

    def encode(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        payload = super().encode(args, kwargs)  # TypeError for a call that does not fit
        call = _SIGNATURE.bind(*args, **kwargs).arguments
        try:
            _check_request(call.get("headers"), call.get("message_id"), call.get("event_type"))
        except ValueError as exc:
            raise ValueError(f"cannot enqueue {self.name}: {exc}") from None
        return payload


_SIGNATURE = inspect.signature(deliver_webhook)


# -- installing ------------------------------------------------------------------------


class _Install(Protocol[_P]):
    def __call__(
        self,
        queue: DurableQueue,
        settings: WebhookSettings | Mapping[str, Any] | None = None,
        *,
        resolver: Resolver | None = None,
    ) -> Task[_P, dict[str, Any]]: ...


def _installer(task_function: Callable[_P, dict[str, Any]]) -> _Install[_P]:
    # mypy cannot write deliver_webhook's parameter list in an annotation; made
    # this way, install() returns a Task whose .enqueue() mypy checks against it.
    def install(
        queue: DurableQueue,
        settings: WebhookSettings | Mapping[str, Any] | None = None,
        *,
        resolver: Resolver | None = None,
    ) -> Task[_P, dict[str, Any]]:
        """Keep a :class:`WebhookDeliverer` for ``settings`` on ``queue`` and register
        :func:`deliver_webhook` as ``jobq.webhook.deliver``; return the task to
        enqueue with.

        ``settings`` is a :class:`WebhookSettings`, a mapping of its fields
        (``app.config["JOBQ_WEBHOOK"]``) or None for the defaults. ``resolver``
        replaces the system's DNS resolver (see :class:`WebhookDeliverer`).
        Installing again closes the previous deliverer's sessions. Raises
        :class:`~jobq.ConfigurationError` for bad settings.
        """
        if settings is None:
            settings = WebhookSettings()
        elif not isinstance(settings, WebhookSettings):
            settings = WebhookSettings.from_mapping(settings)
        replace_installed(queue, EXTENSION_KEY, WebhookDeliverer(settings, resolver=resolver))
        backoff = retry_backoff(settings.retry_delay)
        task = queue.task(TASK_NAME, max_attempts=settings.max_attempts, backoff=backoff)(
            task_function
        )
        # The registry holds this very object, so every way of enqueueing checks
        # the arguments. (jobq.tasks has no hook for checking a call; a subclass
        # changed in place keeps the registration queue.task made, limits and all.)
        task.__class__ = _WebhookTask
        return task

    install.__qualname__ = install.__name__ = "install"
    install.__module__ = __name__
    return install


install = _installer(deliver_webhook)


def uninstall(queue: DurableQueue) -> None:
    """Close the sessions of the handler installed on ``queue`` and remove it.

    Call it after stopping the queue's workers. The task stays registered; its
    jobs fail with a message saying the handler is not installed.
    """
    remove_installed(queue, EXTENSION_KEY)
