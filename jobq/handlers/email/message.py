"""Building one email from a job's arguments: every value checked, nothing sent.

Rule: this module builds messages in memory and reads attachment files; it
never connects to a server (that is ``transport``) and knows nothing of jobs.
"""

from __future__ import annotations

import mimetypes
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import NamedTuple

from .headers import POLICY, check_header_text, check_text, parse_address
from .settings import EmailSettings

__all__ = ["OutgoingEmail", "build_message"]

_HEADER_NAME = re.compile(r"[!-9;-~]+")  # printable ASCII except ":" (RFC 5322 ftext)
_STRUCTURAL_HEADERS = frozenset(
    {
        "bcc",
        "cc",
        "date",
        "from",
        "message-id",
        "mime-version",
        "received",
        "reply-to",
        "return-path",
        "sender",
        "subject",
        "to",
    }
)
_STRUCTURAL_PREFIXES = ("content-", "resent-")


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


class _Recipients(NamedTuple):
    to: list[Address]
    cc: list[Address]
    bcc: list[Address]

    def envelope(self) -> tuple[str, ...]:
        """Every address once, To then Cc then Bcc."""
        seen: dict[str, None] = {}
        for address in (*self.to, *self.cc, *self.bcc):
            seen.setdefault(address.addr_spec, None)
        return tuple(seen)


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

    Arguments as for :func:`~jobq.handlers.email.send_email`; ``settings``
    (default ``EmailSettings()``) gives ``default_sender``, ``attachment_dirs``
    and ``max_attachment_bytes``; ``message_id`` (default: a new random one) is
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
    recipients = _recipients(to, cc, bcc)
    from_address = _sender(sender, settings)
    reply = None if reply_to is None else parse_address(reply_to, "reply_to")
    _check_bodies(text, html)
    custom = _custom_headers(headers)
    files = _attachments(attachments, settings)

    message = EmailMessage(policy=POLICY)
    message["From"] = from_address
    if recipients.to:
        message["To"] = recipients.to
    if recipients.cc:
        message["Cc"] = recipients.cc
    if reply is not None:
        message["Reply-To"] = reply
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    if message_id is None:
        message_id = make_msgid(domain=from_address.domain)
    message["Message-ID"] = check_header_text(message_id, "message_id")
    for name, value in custom:
        message[name] = value
    _set_body(message, text, html)
    for name, content in files:
        _attach(message, name, content)
    return OutgoingEmail(message, from_address.addr_spec, recipients.envelope())


def _recipients(to: object, cc: object, bcc: object) -> _Recipients:
    recipients = _Recipients(
        _address_list(to, "to"), _address_list(cc, "cc"), _address_list(bcc, "bcc")
    )
    if not any(recipients):
        raise ValueError("give at least one recipient (to, cc or bcc)")
    return recipients


def _address_list(value: object, what: str) -> list[Address]:
    if value is None:
        return []
    if isinstance(value, str):
        return [parse_address(value, what)]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{what} must be an address or a list of addresses, got {value!r}")
    return [parse_address(item, f"{what}[{index}]") for index, item in enumerate(value)]


def _sender(sender: str | None, settings: EmailSettings) -> Address:
    if sender is None and settings.default_sender is None:
        raise ValueError("give sender=, or set default_sender in EmailSettings")
    return parse_address(sender if sender is not None else settings.default_sender, "sender")


def _check_bodies(text: object, html: object) -> None:
    if text is None and html is None:
        raise ValueError("give text=, html= or both")
    for body, what in ((text, "text"), (html, "html")):
        if body is not None and not isinstance(body, str):
            raise ValueError(f"{what} must be a string, got {type(body).__name__}")


def _custom_headers(headers: object) -> list[tuple[str, str]]:
    if headers is not None and not isinstance(headers, Mapping):
        raise ValueError(f"headers must be a mapping of names to values, got {headers!r}")
    return [_check_header(name, value) for name, value in (headers or {}).items()]


def _check_header(name: object, value: object) -> tuple[str, str]:
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"header name {name!r} must be printable ASCII without spaces or ':'")
    lowered = name.lower()
    if lowered in _STRUCTURAL_HEADERS or lowered.startswith(_STRUCTURAL_PREFIXES):
        raise ValueError(
            f"header {name!r} cannot be set through headers=; use the arguments of "
            "send_email (to, cc, bcc, reply_to, subject, sender, attachments) instead"
        )
    return name, check_header_text(value, f"header {name}")


def _attachments(attachments: object, settings: EmailSettings) -> list[tuple[str, bytes]]:
    """The file name and content of each attachment, within the settings' limits."""
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
    return files


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


def _set_body(message: EmailMessage, text: str | None, html: str | None) -> None:
    if text is not None:
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
    else:
        assert html is not None
        message.set_content(html, subtype="html")


def _attach(message: EmailMessage, name: str, content: bytes) -> None:
    kind, encoding = mimetypes.guess_type(name)
    # message/* and multipart/* bodies may not be base64 (RFC 2046): readers
    # would parse the file as parts of this message, so they go as bytes.
    if (
        kind is None
        or encoding is not None
        or "/" not in kind
        or kind.startswith(("message/", "multipart/"))
    ):
        kind = "application/octet-stream"
    maintype, subtype = kind.split("/", 1)
    message.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
