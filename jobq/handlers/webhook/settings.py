"""The webhook handler's settings: how deliveries are signed and sent.

Rule: plain checked values; this module sends nothing. It reads a secret as
``signing`` does and an allow list as ``netguard`` does, to refuse bad ones early.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ... import __version__
from ...validate import is_int, is_number
from .._install import settings_from_mapping
from .netguard import NetGuard
from .signing import secret_bytes

__all__ = ["MAX_REDIRECTS", "WebhookSettings"]

MAX_REDIRECTS = 5
"""Hops a delivery follows at most, with ``follow_redirects``."""


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
        _check_durations(self)
        _check_counts(self)
        # Lists from a config file are kept as tuples.
        object.__setattr__(self, "allow_hosts", _hosts(self.allow_hosts))
        object.__setattr__(self, "allowed_schemes", _schemes(self.allowed_schemes))
        _check_tls(self)
        _check_user_agent(self.user_agent)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> WebhookSettings:
        """Settings from a plain mapping such as ``app.config["JOBQ_WEBHOOK"]``.

        Raises :class:`~jobq.ConfigurationError` naming any unknown key or bad value.
        """
        return settings_from_mapping(cls, mapping, "JOBQ_WEBHOOK")


def _check_durations(settings: WebhookSettings) -> None:
    for name in ("connect_timeout", "read_timeout", "retry_delay"):
        value = getattr(settings, name)
        if not is_number(value) or not 0 < value < math.inf:
            raise ValueError(f"{name} must be a number of seconds above 0, got {value!r}")
    cap = settings.max_retry_after
    if not is_number(cap) or not 0 <= cap < math.inf:
        raise ValueError(f"max_retry_after must be a number of seconds >= 0, got {cap!r}")


def _check_counts(settings: WebhookSettings) -> None:
    attempts, excerpt = settings.max_attempts, settings.max_response_excerpt
    if not is_int(attempts) or attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {attempts!r}")
    if not is_int(excerpt) or excerpt < 0:
        raise ValueError(f"max_response_excerpt must be an integer >= 0, got {excerpt!r}")


def _hosts(allow_hosts: object) -> tuple[str, ...]:
    hosts = _as_tuple(allow_hosts, "allow_hosts")
    for entry in hosts:
        NetGuard([entry])  # raises ValueError naming the bad entry
    return hosts


def _schemes(allowed_schemes: object) -> tuple[str, ...]:
    schemes = tuple(
        s.lower() if isinstance(s, str) else s
        for s in _as_tuple(allowed_schemes, "allowed_schemes")
    )
    if not schemes or any(s not in ("http", "https") for s in schemes):
        raise ValueError(
            f"allowed_schemes must name 'https' and/or 'http', got {allowed_schemes!r}"
        )
    return schemes


def _as_tuple(value: object, name: str) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list of strings, got {value!r}; for one write (x,)")
    return tuple(value)


def _check_tls(settings: WebhookSettings) -> None:
    for name in ("follow_redirects", "verify_tls"):
        if not isinstance(getattr(settings, name), bool):
            raise ValueError(f"{name} must be True or False, got {getattr(settings, name)!r}")
    cafile = settings.cafile
    if cafile is not None:
        if not settings.verify_tls:
            raise ValueError("cafile is only used with verify_tls=True")
        if not isinstance(cafile, str) or not os.path.isfile(cafile):
            raise ValueError(f"cafile {cafile!r} is not a file")


def _check_user_agent(user_agent: object) -> None:
    if (
        not isinstance(user_agent, str)
        or not user_agent
        or any(ord(c) < 0x20 or c == "\x7f" or ord(c) > 0xFF for c in user_agent)
    ):
        raise ValueError(
            f"user_agent must be a non-empty Latin-1 string without control characters "
            f"(an HTTP header carries nothing else), got {user_agent!r}"
        )
