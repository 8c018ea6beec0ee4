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

:func:`parse_address` reads one mailbox with the same care, and :data:`POLICY`
is the policy messages are built and written with.

Rule: this module depends only on the standard library; the rest of the email
handler builds on it.
"""

from __future__ import annotations

import re
from email import errors as email_errors
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import Policy

__all__ = [
    "FORBIDDEN",
    "POLICY",
    "check_header_text",
    "check_text",
    "has_forbidden",
    "parse_address",
    "serialize",
]

POLICY = email_policy.SMTP.clone(cte_type="7bit")
"""CRLF line ends, long headers folded at 78 characters, and bodies encoded to 7-bit
(quoted-printable or base64 when needed) so that any server accepts them."""

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


def parse_address(value: object, what: str) -> Address:
    """One mailbox, parsed strictly: ``ada@example.com`` or ``Ada <ada@example.com>``.

    Raises ValueError naming ``what`` for anything else: several addresses, a
    group, no user or domain, a non-ASCII address, a line break or control
    character as written or in the decoded display name, user or domain.
    """
    text = check_header_text(value, what)
    try:
        header = POLICY.header_factory("to", text)
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
        problem = _part_difference(ours, theirs, where)
        if problem is not None:
            return problem
    return None


def _part_difference(ours: Message, theirs: Message, where: str) -> str | None:
    """What differs between one MIME part built and read back, or None; the parts
    of a multipart are compared by the caller."""
    expected = [name.lower() for name in ours]
    found = [name.lower() for name in theirs]
    if found != expected:
        return f"{where} has the headers {found} instead of {expected}"
    for name, raw in theirs.raw_items():
        if not isinstance(raw, str) or not _WIRE_VALUE.fullmatch(raw):
            return f"the {name} header of {where} holds a line break or control character"
    # Written with CRLF, built with LF: compare line by line.
    if not ours.is_multipart() and (
        str(ours.get_payload()).splitlines() != str(theirs.get_payload()).splitlines()
    ):
        return f"the body of {where} changed"
    return None
