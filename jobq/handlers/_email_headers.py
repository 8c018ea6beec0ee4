"""Header values that cannot inject headers: checked on the way in, verified on the way out.

The ``email`` package decodes RFC 2047 encoded words (``=?UTF-8?Q?=0D=0A?=``)
wherever it parses a header value (subjects, display names, parameters such
as an attachment's file name), and Python 3.10 to 3.12 before the fix for
CVE-2024-6923 write what they decoded as it is when folding: a value with no
line break in it can still put a line break on the wire. So there are two
defences, each enough on its own and neither relying on the standard
library's version:

- :func:`check_header_text` refuses a value whose text carries a line break
  or control character, as written and once its encoded words are decoded
  (again and again, for encoded words that decode to encoded words);
- :func:`serialize` writes the message, reads the bytes back and refuses
  them unless every MIME part has exactly the headers it was built with, each
  a line of printable ASCII (folded only by CRLF and a space or tab), and the
  same body.

This module depends only on the standard library.
"""

from __future__ import annotations

import re
from email import errors as email_errors
from email import policy as email_policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import Policy

__all__ = ["FORBIDDEN", "check_header_text", "check_text", "has_forbidden", "serialize"]

# Characters that end a line for some mail software, plus every other control
# character but TAB: refused in every header value, address and file name.
FORBIDDEN = frozenset(
    [chr(c) for c in range(0x20) if c != 0x09] + ["\x7f", "\x85", "\u2028", "\u2029"]
)
MAX_DECODING_ROUNDS = 8
"""Encoded words nested deeper than this (an encoded word that decodes to an
encoded word, ...) are refused rather than decoded further."""

_PARSER = BytesParser(policy=email_policy.compat32)  # keeps header values as written
# One header value as written on the wire: printable ASCII, folded by CRLF + WSP.
_WIRE_VALUE = re.compile(r"[\t\x20-\x7e]*(?:\r\n[\t ][\t\x20-\x7e]*)*")


def has_forbidden(value: str) -> bool:
    """Whether ``value`` holds a line break or a control character other than TAB."""
    return not FORBIDDEN.isdisjoint(value)


def check_text(value: object, what: str) -> str:
    """``value`` if it is a string without line breaks or control characters.

    Raises ValueError naming ``what`` and the first such character.
    """
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if has_forbidden(value):
        raise ValueError(
            f"{what} must not contain line breaks or control characters, "
            f"found {_first_forbidden(value)!r}"
        )
    return value


def check_header_text(value: object, what: str) -> str:
    """``value`` if neither it nor its decoded RFC 2047 encoded words hold a
    line break or control character: what the ``email`` package would write.

    Raises ValueError naming ``what`` and the character found; a value whose
    encoded words nest more than :data:`MAX_DECODING_ROUNDS` deep is refused too.
    """
    text = check_text(value, what)
    decoded = text
    for _ in range(MAX_DECODING_ROUNDS):
        if "=?" not in decoded:  # every encoded word starts so
            return text
        again = _decode(decoded, what)
        if again == decoded:
            return text
        if has_forbidden(again):
            raise ValueError(
                f"{what} must not contain line breaks or control characters, found "
                f"{_first_forbidden(again)!r} once its RFC 2047 encoded words "
                "(=?charset?Q?...?= or =?charset?B?...?=) are decoded"
            )
        decoded = again
    raise ValueError(
        f"{what} nests RFC 2047 encoded words (=?charset?Q?...?=) more than "
        f"{MAX_DECODING_ROUNDS} levels deep"
    )


def serialize(message: EmailMessage, policy: Policy) -> bytes:
    """The bytes of ``message`` as written with ``policy``, once checked that they
    read back as the same message: every MIME part with exactly the headers it
    was built with (no more, no fewer, same order), each a line of printable
    ASCII folded only by CRLF and a space or tab, and the same body.

    Raises ValueError saying what differs, or when the ``email`` package itself
    refuses to write a header (``HeaderWriteError`` on Pythons with the fix for
    CVE-2024-6923). ``policy`` must write CRLF line ends and 7-bit headers.
    """
    try:
        data = message.as_bytes(policy=policy)
    except email_errors.MessageError as exc:
        raise ValueError(f"the email package refused to write the message: {exc}") from None
    problem = _difference(message, _PARSER.parsebytes(data))
    if problem is not None:
        raise ValueError(
            f"the message as written would not be the one built: {problem} (a header value "
            "decoded into a line break?)"
        )
    return data


def _first_forbidden(value: str) -> str:
    return next(char for char in value if char in FORBIDDEN)


def _decode(text: str, what: str) -> str:
    # The email package's own reading of a header value, encoded words decoded
    # the way it decodes them (any charset Python knows, lenient about spacing).
    try:
        return str(email_policy.SMTP.header_factory("x-jobq-check", text))
    except Exception as exc:  # the parser raises assorted errors for garbage
        raise ValueError(f"{what} cannot be read as a header value: {text!r} ({exc})") from None


def _difference(built: EmailMessage, read: Message) -> str | None:
    """What differs between the message built and the one read back, or None."""
    built_parts, read_parts = list(built.walk()), list(read.walk())
    if len(built_parts) != len(read_parts):
        return f"it has {len(read_parts)} MIME parts instead of {len(built_parts)}"
    for number, (ours, theirs) in enumerate(zip(built_parts, read_parts, strict=True)):
        where = "the message" if number == 0 else f"MIME part {number}"
        expected = [name.lower() for name in ours]
        found = [name.lower() for name in theirs]
        if found != expected:
            return f"{where} has the headers {found} instead of {expected}"
        for name, raw in theirs.raw_items():
            if not isinstance(raw, str) or not _WIRE_VALUE.fullmatch(raw):
                return f"the {name} header of {where} holds a line break or control character"
        if ours.is_multipart():
            continue  # its parts are compared in turn
        # Written with CRLF, built with LF: compare line by line.
        if str(ours.get_payload()).splitlines() != str(theirs.get_payload()).splitlines():
            return f"the body of {where} changed"
    return None
