"""The email handler's settings: how to reach the SMTP server and what jobs may send.

Rule: settings are plain checked values; this module imports only the header
checks (``headers``), ``jobq.validate`` and the shared settings reader
(``_install``), nothing that connects or sends.
"""

from __future__ import annotations

import dataclasses
import math
import os
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ...validate import is_int, is_number
from .._install import settings_from_mapping
from .headers import has_forbidden, parse_address

__all__ = ["EmailSettings"]

_SECURITIES = ("none", "starttls", "tls")


@dataclass(frozen=True)
class EmailSettings:
    """How to reach the SMTP server and what jobs may send. Every field has a safe default.

    :param host: SMTP server name or address. Default ``"localhost"``.
    :param port: TCP port, 1 to 65535. Default 25; usually 587 with
        ``security="starttls"`` and 465 with ``security="tls"``.
    :param security: ``"none"`` (plain SMTP, default), ``"starttls"`` (plain,
        then upgraded to TLS with STARTTLS; a server that does not offer it
        fails the job) or ``"tls"`` (implicit TLS from the first byte, SMTPS).
    :param username: login name; with ``password``, every connection logs in
        once (AUTH). Default None: no login.
    :param password: password for ``username`` (never shown in ``repr``).
    :param timeout: seconds to wait for the server to connect or answer, > 0.
        Default 30.
    :param default_sender: ``From`` address of messages that give no
        ``sender``, e.g. ``"Example <noreply@example.com>"``. Default None:
        every job must give one.
    :param local_hostname: name sent with EHLO. Default None: this host's
        fully qualified name.
    :param verify: check the server's TLS certificate and host name (default
        True). Turn off only for a test server.
    :param cafile: PEM file of the certificate authorities to trust (e.g. a
        private CA), instead of the system's. Default None.
    :param attachment_dirs: absolute folders attachments may be read from
        (symlinks resolved). Default empty: jobs carrying attachments fail,
        so a job payload can never mail out ``/etc/passwd``.
    :param max_attachment_bytes: total size of one message's attachments, in
        bytes, >= 0. Default 10 MiB.
    :param max_attempts: attempts per message before its job fails, >= 1. Default 5.
    :param retry_delay: seconds before the second attempt, >= 0; each later
        one waits twice as long (with jitter: between half and all of it), at
        most an hour. Default 60, so greylisting servers (which refuse the
        first try for a few minutes) are passed within the attempts.
    """

    host: str = "localhost"
    port: int = 25
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    timeout: float = 30.0
    default_sender: str | None = None
    local_hostname: str | None = None
    verify: bool = True
    cafile: str | None = None
    attachment_dirs: tuple[str, ...] = ()
    max_attachment_bytes: int = 10 * 1024 * 1024
    max_attempts: int = 5
    retry_delay: float = 60.0

    def __post_init__(self) -> None:
        _check_server(self.host, self.port, self.security)
        _check_login(self)
        if not is_number(self.timeout) or not 0 < self.timeout < math.inf:
            raise ValueError(f"timeout must be a number of seconds above 0, got {self.timeout!r}")
        _check_sender(self.default_sender)
        _check_tls(self.verify, self.cafile)
        # A list from a config file is kept as a tuple.
        object.__setattr__(self, "attachment_dirs", _folders(self.attachment_dirs))
        _check_limits(self)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> EmailSettings:
        """Settings from a plain mapping such as ``app.config["JOBQ_EMAIL"]``.

        Raises :class:`~jobq.ConfigurationError` naming any unknown key or bad value.
        """
        return settings_from_mapping(cls, mapping, "JOBQ_EMAIL")

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context connections use: the system's trusted CAs (or ``cafile``),
        host name checked, unless ``verify`` is False."""
        context = ssl.create_default_context(cafile=self.cafile)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _check_server(host: str, port: int, security: str) -> None:
    if not isinstance(host, str) or not host or has_forbidden(host) or " " in host:
        raise ValueError(f"host must be a server name or address, got {host!r}")
    if not is_int(port) or not 1 <= port <= 65535:
        raise ValueError(f"port must be an integer from 1 to 65535, got {port!r}")
    if security not in _SECURITIES:
        raise ValueError(f"security must be 'none', 'starttls' or 'tls', got {security!r}")


def _check_login(settings: EmailSettings) -> None:
    """The text settings hold no control character; username and password go together."""
    for name in ("username", "password", "local_hostname", "cafile"):
        value = getattr(settings, name)
        if value is not None and (not isinstance(value, str) or has_forbidden(value)):
            raise ValueError(f"{name} must be a string without control characters or None")
    if (settings.username is None) != (settings.password is None):
        raise ValueError("give both username and password, or neither")


def _check_sender(default_sender: str | None) -> None:
    if default_sender is not None:
        try:
            parse_address(default_sender, "default_sender")
        except ValueError as exc:
            raise ValueError(str(exc)) from None


def _check_tls(verify: bool, cafile: str | None) -> None:
    if not isinstance(verify, bool):
        raise ValueError(f"verify must be True or False, got {verify!r}")
    if cafile is not None:
        if not verify:
            raise ValueError("cafile is only used with verify=True")
        if not os.path.isfile(cafile):
            raise ValueError(f"cafile {cafile!r} is not a file")


def _folders(dirs: object) -> tuple[str, ...]:
    """``attachment_dirs`` as a tuple of absolute folders."""
    if isinstance(dirs, (str, bytes)) or not isinstance(dirs, Iterable):
        raise ValueError(
            f"attachment_dirs must be a list of folders, got {dirs!r}; "
            "for one folder write (folder,)"
        )
    folders = tuple(dirs)
    for folder in folders:
        if not isinstance(folder, str) or not os.path.isabs(folder):
            raise ValueError(f"attachment_dirs must hold absolute paths, got {folder!r}")
    return folders


def _check_limits(settings: EmailSettings) -> None:
    size, attempts, delay = (
        settings.max_attachment_bytes,
        settings.max_attempts,
        settings.retry_delay,
    )
    if not is_int(size) or size < 0:
        raise ValueError(f"max_attachment_bytes must be an integer >= 0, got {size!r}")
    if not is_int(attempts) or attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {attempts!r}")
    if not is_number(delay) or not 0 <= delay < math.inf:
        raise ValueError(f"retry_delay must be a number of seconds >= 0, got {delay!r}")
