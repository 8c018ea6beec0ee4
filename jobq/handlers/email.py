"""Send email over SMTP from jobs: ``install(queue, settings)`` registers ``jobq.email.send``.

::

    from jobq.handlers import email

    send_email = email.install(queue, email.EmailSettings(
        host="smtp.example.com", port=587, security="starttls",
        username="mailer", password=os.environ["SMTP_PASSWORD"],
        default_sender="Example <noreply@example.com>",
    ))
    send_email.enqueue(to="ada@example.com", subject="Welcome", text="Hello!")

    # a newsletter: one job per recipient, stored in one transaction
    send_email.enqueue_many([{"to": a, "subject": "News", "text": body} for a in addresses])

Everything a job carries is checked before anything is sent: header values and
addresses containing a line break or control character (as written, or once
RFC 2047 encoded words such as ``=?UTF-8?Q?=0D=0A?=`` are decoded), malformed
addresses, custom headers that would replace structural ones, and attachments
outside :attr:`EmailSettings.attachment_dirs` fail the job at once
(:class:`~jobq.Fail`). The message is then written and read back before it is
sent: one that would not read back with exactly the headers and body it was
built with fails the job too, whatever the Python version's ``email`` package
does (see ``_email_headers``).

The SMTP server's answers decide what happens next: temporary ones (4xx
replies, a refused or lost connection, a timeout) raise
:class:`~jobq.TransientError`, so the job is tried again with backoff up to
``max_attempts``; permanent ones (5xx replies, authentication refused, an
untrusted TLS certificate) fail the job at once with the server's reply in
``job.error.message``.

Each worker thread keeps one SMTP connection open and reuses it for the next
message (logging in and starting TLS once per connection), so a newsletter to
10,000 addresses costs about one connection per worker thread. Close them once
the workers are stopped: :func:`uninstall` (or ``queue.extensions[EXTENSION_KEY].close()``).

This module depends only on the standard library (``smtplib``, ``email``, ``ssl``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import mimetypes
import os
import re
import smtplib
import ssl
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, Protocol

from ..context import current_job
from ..errors import ConfigurationError, Fail, JobqError, TransientError
from . import installed, remove_installed, replace_installed, retry_backoff, settings_from_mapping
from ._email_headers import check_header_text, check_text, has_forbidden, serialize

if TYPE_CHECKING:
    from ..queue import DurableQueue
    from ..tasks import Task

__all__ = [
    "EXTENSION_KEY",
    "TASK_NAME",
    "EmailSettings",
    "Mailer",
    "OutgoingEmail",
    "build_message",
    "classify",
    "install",
    "send_email",
    "uninstall",
]

EXTENSION_KEY = "jobq.email"
"""Key of the :class:`Mailer` in ``queue.extensions``."""

TASK_NAME = "jobq.email.send"
"""Name the task is registered under; jobs refer to it."""

_POLICY = email_policy.SMTP.clone(cte_type="7bit")
"""CRLF line ends, long headers folded at 78 characters, and bodies encoded to 7-bit
(quoted-printable or base64 when needed) so that any server accepts them."""

_HEADER_NAME = re.compile(r"[!-9;-~]+")  # printable ASCII except ":" (RFC 5322 ftext)
_STRUCTURAL_HEADERS = frozenset({
    "bcc", "cc", "date", "from", "message-id", "mime-version", "received", "reply-to",
    "return-path", "sender", "subject", "to",
})
_STRUCTURAL_PREFIXES = ("content-", "resent-")
_SECURITIES = ("none", "starttls", "tls")
_MAX_REPLY_TEXT = 500  # characters of a server reply kept in an error message


# -- settings --------------------------------------------------------------------------


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
        if not isinstance(self.host, str) or not self.host or has_forbidden(self.host) or (
            " " in self.host
        ):
            raise ValueError(f"host must be a server name or address, got {self.host!r}")
        if not _is_int(self.port) or not 1 <= self.port <= 65535:
            raise ValueError(f"port must be an integer from 1 to 65535, got {self.port!r}")
        if self.security not in _SECURITIES:
            raise ValueError(
                f"security must be 'none', 'starttls' or 'tls', got {self.security!r}"
            )
        for name in ("username", "password", "local_hostname", "cafile"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or has_forbidden(value)):
                raise ValueError(f"{name} must be a string without control characters or None")
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        if not _is_number(self.timeout) or not 0 < self.timeout < math.inf:
            raise ValueError(f"timeout must be a number of seconds above 0, got {self.timeout!r}")
        if self.default_sender is not None:
            try:
                _parse_address(self.default_sender, "default_sender")
            except ValueError as exc:
                raise ValueError(str(exc)) from None
        if not isinstance(self.verify, bool):
            raise ValueError(f"verify must be True or False, got {self.verify!r}")
        if self.cafile is not None:
            if not self.verify:
                raise ValueError("cafile is only used with verify=True")
            if not os.path.isfile(self.cafile):
                raise ValueError(f"cafile {self.cafile!r} is not a file")
        dirs = self.attachment_dirs
        if isinstance(dirs, (str, bytes)) or not isinstance(dirs, Iterable):
            raise ValueError(
                f"attachment_dirs must be a list of folders, got {dirs!r}; "
                "for one folder write (folder,)"
            )
        dirs = tuple(dirs)
        for folder in dirs:
            if not isinstance(folder, str) or not os.path.isabs(folder):
                raise ValueError(f"attachment_dirs must hold absolute paths, got {folder!r}")
        object.__setattr__(self, "attachment_dirs", dirs)  # a list from a config file
        if not _is_int(self.max_attachment_bytes) or self.max_attachment_bytes < 0:
            raise ValueError(
                f"max_attachment_bytes must be an integer >= 0, got {self.max_attachment_bytes!r}"
            )
        if not _is_int(self.max_attempts) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts!r}")
        if not _is_number(self.retry_delay) or not 0 <= self.retry_delay < math.inf:
            raise ValueError(
                f"retry_delay must be a number of seconds >= 0, got {self.retry_delay!r}"
            )

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


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- building messages -----------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingEmail:
    """A message ready to send, with its envelope (Bcc recipients are only here).

    :ivar message: the message as it will be sent (no ``Bcc`` header).
    :ivar sender: envelope sender (``MAIL FROM``), the From address.
    :ivar recipients: envelope recipients (``RCPT TO``): To, Cc and Bcc
        addresses, each once, in that order.
    """

    message: EmailMessage
    sender: str
    recipients: tuple[str, ...]


def _parse_address(value: object, what: str) -> Address:
    """One mailbox, parsed strictly: ``ada@example.com`` or ``Ada <ada@example.com>``."""
    text = check_header_text(value, what)
    try:
        header = _POLICY.header_factory("to", text)
        addresses = header.addresses
        groups = header.groups
    except Exception as exc:  # the parser raises assorted errors for garbage
        raise ValueError(f"{what} is not a valid email address: {text!r} ({exc})") from None
    if header.defects or len(addresses) != 1 or groups[0].display_name is not None:
        raise ValueError(
            f"{what} must be one email address like 'ada@example.com' or "
            f"'Ada <ada@example.com>', got {text!r}"
        )
    address: Address = addresses[0]
    if not address.username or not address.domain:
        raise ValueError(f"{what} must be an address with a user and a domain, got {text!r}")
    if not address.addr_spec.isascii():
        raise ValueError(
            f"{what} must be an ASCII address (write a non-ASCII domain in its xn-- form), "
            f"got {text!r}"
        )
    for part in (address.display_name, address.username, address.domain):
        # Parsing decoded one level of encoded words; the parts are written out
        # and parsed again, which would decode the next level (=?..?= inside =?..?=).
        check_header_text(part, f"{what} (after decoding)")
    return address


def _address_list(value: object, what: str) -> list[Address]:
    if value is None:
        return []
    if isinstance(value, str):
        return [_parse_address(value, what)]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{what} must be an address or a list of addresses, got {value!r}")
    return [_parse_address(item, f"{what}[{index}]") for index, item in enumerate(value)]


def _check_header(name: object, value: object) -> tuple[str, str]:
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise ValueError(
            f"header name {name!r} must be printable ASCII without spaces or ':'"
        )
    lowered = name.lower()
    if lowered in _STRUCTURAL_HEADERS or lowered.startswith(_STRUCTURAL_PREFIXES):
        raise ValueError(
            f"header {name!r} cannot be set through headers=; use the arguments of "
            "send_email (to, cc, bcc, reply_to, subject, sender, attachments) instead"
        )
    return name, check_header_text(value, f"header {name}")


def _read_attachment(path: object, dirs: list[Path], budget: int) -> tuple[str, bytes]:
    """The file name and content of an attachment inside ``dirs``, at most ``budget`` bytes."""
    text = check_text(path, "attachment path")
    if not dirs:
        raise ValueError(
            "attachments are refused: no attachment_dirs are configured in EmailSettings"
        )
    if not os.path.isabs(text):
        raise ValueError(f"attachment path {text!r} must be absolute")
    real = Path(os.path.realpath(text))
    if not any(real.is_relative_to(folder) for folder in dirs):
        raise ValueError(
            f"attachment {text!r} is outside the allowed attachment_dirs (symlinks resolved)"
        )
    # O_NOFOLLOW: a symlink swapped in after the check above is not followed.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise ValueError(f"attachment {text!r} cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError(f"attachment {text!r} is not a regular file")
    with open(fd, "rb") as file:
        try:
            content = file.read(budget + 1)
        except OSError as exc:
            raise ValueError(f"attachment {text!r} cannot be read: {exc.strerror}") from None
    if len(content) > budget:
        raise ValueError("the attachments are larger than max_attachment_bytes")
    name = Path(text).name
    return name, content


def build_message(
    to: str | list[str],
    subject: str,
    *,
    text: str | None = None,
    html: str | None = None,
    sender: str | None = None,
    cc: list[str] | None = None,
    bcc: list[str] | None = None,
    reply_to: str | None = None,
    headers: Mapping[str, str] | None = None,
    attachments: list[str] | None = None,
    settings: EmailSettings | None = None,
    message_id: str | None = None,
) -> OutgoingEmail:
    """Check everything and build the message; nothing is sent.

    Arguments as for :func:`send_email`; ``settings`` (default
    ``EmailSettings()``) gives ``default_sender``, ``attachment_dirs`` and
    ``max_attachment_bytes``; ``message_id`` (default: a new random one) is
    the Message-ID, angle brackets included.

    With ``text`` and ``html`` the body is ``multipart/alternative``; with
    attachments, ``multipart/mixed``. Raises ValueError saying what is wrong:
    a line break or control character in the subject, an address, a header or
    a file name, as written or in its decoded RFC 2047 encoded words; an
    address that is not exactly one valid mailbox; no recipient, no sender or
    no body; a custom header that would replace a structural one (From, To,
    Cc, Bcc, Subject, Date, Message-ID, Content-*, ...); an attachment outside
    ``attachment_dirs`` or over the size limit.
    """
    settings = settings if settings is not None else EmailSettings()
    check_header_text(subject, "subject")
    recipients_to = _address_list(to, "to")
    recipients_cc = _address_list(cc, "cc")
    recipients_bcc = _address_list(bcc, "bcc")
    if not recipients_to and not recipients_cc and not recipients_bcc:
        raise ValueError("give at least one recipient (to, cc or bcc)")
    if sender is None and settings.default_sender is None:
        raise ValueError("give sender=, or set default_sender in EmailSettings")
    from_address = _parse_address(
        sender if sender is not None else settings.default_sender, "sender"
    )
    reply = None if reply_to is None else _parse_address(reply_to, "reply_to")
    if text is None and html is None:
        raise ValueError("give text=, html= or both")
    for body, what in ((text, "text"), (html, "html")):
        if body is not None and not isinstance(body, str):
            raise ValueError(f"{what} must be a string, got {type(body).__name__}")
    if headers is not None and not isinstance(headers, Mapping):
        raise ValueError(f"headers must be a mapping of names to values, got {headers!r}")
    custom = [_check_header(name, value) for name, value in (headers or {}).items()]
    if attachments is not None and not isinstance(attachments, (list, tuple)):
        raise ValueError(f"attachments must be a list of file paths, got {attachments!r}")
    files: list[tuple[str, bytes]] = []
    if attachments:
        dirs = [Path(os.path.realpath(folder)) for folder in settings.attachment_dirs]
        budget = settings.max_attachment_bytes
        for path in attachments:
            name, content = _read_attachment(path, dirs, budget)
            check_header_text(name, "attachment file name")
            budget -= len(content)
            files.append((name, content))

    message = EmailMessage(policy=_POLICY)
    message["From"] = from_address
    if recipients_to:
        message["To"] = recipients_to
    if recipients_cc:
        message["Cc"] = recipients_cc
    if reply is not None:
        message["Reply-To"] = reply
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    if message_id is None:
        message_id = make_msgid(domain=from_address.domain)
    message["Message-ID"] = check_header_text(message_id, "message_id")
    for name, value in custom:
        message[name] = value
    if text is not None:
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
    else:
        assert html is not None
        message.set_content(html, subtype="html")
    for name, content in files:
        kind, encoding = mimetypes.guess_type(name)
        # message/* and multipart/* bodies may not be base64 (RFC 2046): readers
        # would parse the file as parts of this message, so they go as bytes.
        if kind is None or encoding is not None or "/" not in kind or kind.startswith(
            ("message/", "multipart/")
        ):
            kind = "application/octet-stream"
        maintype, subtype = kind.split("/", 1)
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)

    seen: dict[str, None] = {}
    for address in (*recipients_to, *recipients_cc, *recipients_bcc):
        seen.setdefault(address.addr_spec, None)
    return OutgoingEmail(message, from_address.addr_spec, tuple(seen))


# -- sending ---------------------------------------------------------------------------


Refused = dict[str, tuple[int, str]]
"""Recipients the server refused, with its reply code and text."""


class _Stage(Exception):
    """Where a transaction failed, wrapped around smtplib's error (internal)."""

    def __init__(self, stage: str, error: BaseException) -> None:
        super().__init__(stage)
        self.stage = stage
        self.error = error


class Mailer:
    """Sends messages over one SMTP connection per thread, kept open between messages.

    A new connection starts TLS and logs in once, as the settings say. A kept
    connection that the server closed while idle is replaced at once (nothing
    had been sent on it). After a refusal the connection is kept if it
    answers RSET; after any other error it is closed and the next message
    opens a new one.

    :ivar settings: the :class:`EmailSettings` it was made with.
    :ivar connections_opened: connections opened so far, in every thread.
    """

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings
        self.connections_opened = 0
        self._ssl = settings.ssl_context() if settings.security != "none" else None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[smtplib.SMTP] = set()

    def send(self, outgoing: OutgoingEmail) -> Refused:
        """Send ``outgoing``; return the recipients the server refused while it
        accepted the message for others.

        Raises smtplib's exceptions or OSError, as :func:`classify` expects;
        :class:`smtplib.SMTPRecipientsRefused` when every recipient was refused;
        ValueError, before connecting, when the message as written would not
        read back with exactly the headers and body it was built with (a
        header value that the ``email`` package decoded into a line break).
        """
        data = serialize(outgoing.message, _POLICY)
        smtp: smtplib.SMTP | None = getattr(self._local, "smtp", None)
        if smtp is not None:
            try:
                return self._transact(smtp, outgoing, data)
            except _Stage as failed:
                # A connection the server closed while it was idle fails at the
                # first command (or answers 421 to it); nothing was sent: reconnect.
                if not (failed.stage == "MAIL" and _closed_by_server(failed.error)):
                    raise failed.error from None
                self._drop(smtp)
        smtp = self._connect()
        try:
            return self._transact(smtp, outgoing, data)
        except _Stage as failed:
            raise failed.error from None

    def close(self) -> None:
        """Say QUIT on, then close, every connection open in any thread.

        Call it once the worker threads stopped; the mailer stays usable (a
        later message opens a new connection).
        """
        with self._lock:
            connections, self._open = list(self._open), set()
        for smtp in connections:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
            finally:
                smtp.close()

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        smtp: smtplib.SMTP
        if s.security == "tls":
            smtp = smtplib.SMTP_SSL(s.host, s.port, local_hostname=s.local_hostname,
                                    timeout=s.timeout, context=self._ssl)
        else:
            smtp = smtplib.SMTP(s.host, s.port, local_hostname=s.local_hostname,
                                timeout=s.timeout)
        try:
            if s.security == "starttls":
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise smtplib.SMTPNotSupportedError(
                        f"the SMTP server {s.host}:{s.port} does not offer STARTTLS "
                        "(security='starttls')"
                    )
                smtp.starttls(context=self._ssl)
                smtp.ehlo()
            if s.username is not None and s.password is not None:
                smtp.login(s.username, s.password)
        except BaseException:
            smtp.close()
            raise
        with self._lock:
            self._open.add(smtp)
            self.connections_opened += 1
        self._local.smtp = smtp
        return smtp

    def _transact(self, smtp: smtplib.SMTP, outgoing: OutgoingEmail, data: bytes) -> Refused:
        # smtplib's sendmail(), step by step, so that the caller knows how far it got.
        stage = "MAIL"
        try:
            smtp.ehlo_or_helo_if_needed()
            options = [f"SIZE={len(data)}"] if smtp.has_extn("size") else []
            code, reply = smtp.mail(outgoing.sender, options)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, outgoing.sender)
            stage = "RCPT"
            refused: dict[str, tuple[int, bytes]] = {}
            for recipient in outgoing.recipients:
                code, reply = smtp.rcpt(recipient)
                if code not in (250, 251):
                    refused[recipient] = (code, reply)
                    if code == 421:  # the server is closing the connection
                        break
            if len(refused) == len(outgoing.recipients) or code == 421:
                raise smtplib.SMTPRecipientsRefused(refused)
            stage = "DATA"
            code, reply = smtp.data(data)
            if code != 250:
                raise smtplib.SMTPDataError(code, reply)
            return {r: (c, _text(t)) for r, (c, t) in refused.items()}
        except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused) as error:
            self._after_refusal(smtp, error)
            raise _Stage(stage, error) from error
        except BaseException as error:
            self._drop(smtp)  # disconnected, timed out...: its state is unknown
            if isinstance(error, (smtplib.SMTPException, OSError)):
                raise _Stage(stage, error) from error
            raise

    def _after_refusal(self, smtp: smtplib.SMTP, error: smtplib.SMTPException) -> None:
        # Keep the connection for the next message only if it still works.
        if isinstance(error, smtplib.SMTPRecipientsRefused):
            closing = any(code == 421 for code, _ in error.recipients.values())
        else:
            closing = isinstance(error, smtplib.SMTPResponseException) and (
                error.smtp_code == 421)
        if not closing:
            try:
                if smtp.rset()[0] == 250:
                    return
            except (smtplib.SMTPException, OSError):
                pass
        self._drop(smtp)

    def _drop(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            self._open.discard(smtp)
        if getattr(self._local, "smtp", None) is smtp:
            self._local.smtp = None
        smtp.close()


def _closed_by_server(error: BaseException) -> bool:
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code == 421
    return isinstance(error, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError))


def _text(reply: bytes | str) -> str:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REPLY_TEXT else text[:_MAX_REPLY_TEXT] + "..."


def classify(error: BaseException, server: str) -> JobqError:
    """The jobq error for an SMTP failure: :class:`~jobq.TransientError` (tried
    again) for 4xx replies, lost or refused connections and timeouts;
    :class:`~jobq.Fail` (no more attempts) for 5xx replies, refused
    authentication, a missing server feature and an untrusted certificate.
    ``server`` (``host:port``) prefixes the message."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        replies = {r: (code, _text(text)) for r, (code, text) in error.recipients.items()}
        listed = "; ".join(f"{r}: {code} {text}" for r, (code, text) in replies.items())
        message = f"SMTP server {server} refused every recipient: {listed}"
        # Some recipients refused for now: another attempt may reach them (the
        # ones refused for good are then reported in the job's result).
        if any(400 <= code < 500 for code, _ in replies.values()):
            return TransientError(message)
        return Fail(message)
    if isinstance(error, smtplib.SMTPResponseException):
        code, text = error.smtp_code, _text(error.smtp_error)
        what = {
            smtplib.SMTPSenderRefused: "refused the sender",
            smtplib.SMTPDataError: "refused the message",
            smtplib.SMTPAuthenticationError: "refused the login",
            smtplib.SMTPConnectError: "refused the connection",
            smtplib.SMTPHeloError: "refused EHLO/HELO",
        }.get(type(error), "answered")
        message = f"SMTP server {server} {what}: {code} {text}"
        if 400 <= code < 500:
            return TransientError(message)
        return Fail(message)
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return TransientError(f"SMTP server {server} closed the connection: {error}")
    if isinstance(error, ssl.SSLCertVerificationError):
        return Fail(
            f"the TLS certificate of SMTP server {server} is not trusted: "
            f"{error.verify_message}; set cafile= to the CA that signed it"
        )
    if isinstance(error, smtplib.SMTPException):
        # SMTPNotSupportedError (no STARTTLS, no AUTH), "no suitable authentication
        # method" and the like: settings to fix, not a moment to wait for.
        return Fail(f"SMTP server {server}: {error}")
    if isinstance(error, TimeoutError):
        return TransientError(f"SMTP server {server} did not answer in time ({error})")
    if isinstance(error, OSError):
        reason = error.strerror or str(error) or type(error).__name__
        return TransientError(f"cannot reach SMTP server {server}: {reason}")
    return Fail(f"sending to SMTP server {server} failed: {error!r}")


# -- the task --------------------------------------------------------------------------


def send_email(
    to: str | list[str],
    subject: str,
    *,
    text: str | None = None,
    html: str | None = None,
    sender: str | None = None,
    cc: list[str] | None = None,
    bcc: list[str] | None = None,
    reply_to: str | None = None,
    headers: dict[str, str] | None = None,
    attachments: list[str] | None = None,
) -> dict[str, Any]:
    """Send one email (the task ``jobq.email.send``; enqueue it through :func:`install`).

    :param to: an address (``"ada@example.com"``, ``"Ada <ada@example.com>"``)
        or a list of them.
    :param subject: the subject, one line.
    :param text: plain-text body.
    :param html: HTML body; with ``text`` too, mail clients pick one.
    :param sender: the From address; default ``default_sender``.
    :param cc: addresses shown in a Cc header.
    :param bcc: addresses that get the message without appearing in it.
    :param reply_to: the Reply-To address.
    :param headers: extra headers, e.g. ``{"List-Unsubscribe": "<https://...>"}``;
        not structural ones (From, To, Subject, Content-Type, ...).
    :param attachments: absolute paths of files inside ``attachment_dirs``.

    Returns ``{"message_id": "<...>", "recipients": n, "refused": {address:
    "550 5.1.1 ..."}}``: ``recipients`` counts those the server accepted;
    ``refused`` lists the others when the message went to at least one (they
    are not tried again, since that would send the others a second copy).

    Fails the job at once (:class:`~jobq.Fail`) for invalid arguments, for a
    queue where the handler is not installed and for permanent refusals;
    raises :class:`~jobq.TransientError` for temporary ones. The Message-ID is
    the same for every attempt of a job, so a receiver can recognise a copy
    sent again after a lost answer.
    """
    try:
        mailer = installed(EXTENSION_KEY, Mailer, "jobq.handlers.email.install(queue, settings)")
    except ConfigurationError as exc:
        raise Fail(str(exc)) from exc
    settings = mailer.settings
    job = current_job().job
    try:
        outgoing = build_message(
            to, subject, text=text, html=html, sender=sender, cc=cc, bcc=bcc,
            reply_to=reply_to, headers=headers, attachments=attachments, settings=settings,
            message_id=None,
        )
        domain = outgoing.sender.rpartition("@")[2]
        digest = hashlib.sha256(f"{job.id}:{job.created_at!r}:{job.payload}".encode())
        message_id = f"<jobq.{job.id}.{digest.hexdigest()[:20]}@{domain}>"
        outgoing.message.replace_header("Message-ID", message_id)
    except ValueError as exc:
        raise Fail(f"cannot send this email: {exc}") from exc
    server = f"{settings.host}:{settings.port}"
    try:
        refused = mailer.send(outgoing)
    except (smtplib.SMTPException, OSError) as exc:
        raise classify(exc, server) from exc
    except ValueError as exc:
        raise Fail(f"cannot send this email: {exc}") from exc
    return {
        "message_id": message_id,
        "recipients": len(outgoing.recipients) - len(refused),
        "refused": {r: f"{code} {text}" for r, (code, text) in refused.items()},
    }


# -- installing ------------------------------------------------------------------------

_P = ParamSpec("_P")


class _Install(Protocol[_P]):
    def __call__(
        self, queue: DurableQueue, settings: EmailSettings | Mapping[str, Any] | None = None
    ) -> Task[_P, dict[str, Any]]: ...


def _installer(task_function: Callable[_P, dict[str, Any]]) -> _Install[_P]:
    # mypy cannot write send_email's parameter list in an annotation; made this
    # way, install() returns a Task whose .enqueue() mypy checks against it.
    def install(
        queue: DurableQueue, settings: EmailSettings | Mapping[str, Any] | None = None
    ) -> Task[_P, dict[str, Any]]:
        """Keep a :class:`Mailer` for ``settings`` on ``queue`` and register
        :func:`send_email` as ``jobq.email.send``; return the task to enqueue with.

        ``settings`` is an :class:`EmailSettings`, a mapping of its fields
        (``app.config["JOBQ_EMAIL"]``) or None for the defaults. Installing again
        closes the previous mailer's connections and uses the new settings.
        Raises :class:`~jobq.ConfigurationError` for bad settings.
        """
        if settings is None:
            settings = EmailSettings()
        elif not isinstance(settings, EmailSettings):
            settings = EmailSettings.from_mapping(settings)
        replace_installed(queue, EXTENSION_KEY, Mailer(settings))
        backoff = retry_backoff(settings.retry_delay)
        return queue.task(TASK_NAME, max_attempts=settings.max_attempts, backoff=backoff)(
            task_function
        )

    install.__qualname__ = install.__name__ = "install"
    install.__module__ = __name__
    return install


install = _installer(send_email)


def uninstall(queue: DurableQueue) -> None:
    """Close the SMTP connections of the handler installed on ``queue`` and remove it.

    Call it after stopping the queue's workers. The task stays registered; its
    jobs fail with a message saying the handler is not installed.
    """
    remove_installed(queue, EXTENSION_KEY)
