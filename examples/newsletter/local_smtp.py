"""A local SMTP server for the newsletter example: aiosmtpd on 127.0.0.1, in a thread.

It accepts every message and records who got what, so the example can check
that each recipient got exactly one copy. To show retries it refuses some
deliveries for a while, the way real mail servers do (greylisting): the first
attempt for every ``refuse_every``-th recipient (``user500@example.com``,
``user1000@...``) is answered ``451 4.7.1 try again later`` at RCPT TO, and the
next attempt is accepted. ``reject_every`` makes it refuse some recipients for
good (``550 5.1.1``), to show permanent failures.

    with start_smtp_server(refuse_every=500) as server:
        ...  # send to server.host, server.port
        print(server.stats())
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header
from types import TracebackType
from typing import Any

try:
    from aiosmtpd.controller import Controller
except ImportError as error:  # not in jobq's "all" extra: only "dev" has it
    raise ImportError(
        "the newsletter example runs a local SMTP server with aiosmtpd: "
        "pip install 'aiosmtpd>=1.4' (or install jobq[dev])"
    ) from error

HOST = "127.0.0.1"
_NUMBER = re.compile(r"^user(\d+)@")


@dataclass(frozen=True)
class Delivery:
    """One message the server accepted, for one recipient."""

    recipient: str
    sender: str
    subject: str
    body: str


@dataclass(frozen=True)
class SmtpStats:
    """What the server did so far.

    :param received: messages accepted (one per recipient).
    :param distinct_recipients: recipients that got at least one message.
    :param refused_temporarily: RCPT TO answered 451 (each recipient once at most).
    :param rejected: RCPT TO answered 550.
    :param connections: SMTP sessions opened by clients.
    """

    received: int
    distinct_recipients: int
    refused_temporarily: int
    rejected: int
    connections: int


def _number_of(address: str) -> int | None:
    match = _NUMBER.match(address)
    return int(match.group(1)) if match else None


@dataclass
class _Handler:
    """aiosmtpd handler (its hooks run in the server's event loop thread)."""

    refuse_every: int
    reject_every: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    deliveries: list[Delivery] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)
    rejected: int = 0
    connections: int = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        with self.lock:
            self.connections += 1
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        number = _number_of(address)
        if number is not None and self.reject_every and number % self.reject_every == 0:
            with self.lock:
                self.rejected += 1
            return "550 5.1.1 mailbox unavailable"
        if number is not None and self.refuse_every and number % self.refuse_every == 0:
            with self.lock:
                first_attempt = address not in self.refused
                self.refused.add(address)
            if first_attempt:
                return "451 4.7.1 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.content
        # The compat32 parser: about 20 times faster than email.policy.default's,
        # which would make this one thread the bottleneck of the whole demo.
        message = message_from_bytes(content if isinstance(content, bytes) else content.encode())
        subject = str(make_header(decode_header(message.get("Subject", ""))))
        payload = message.get_payload(decode=True)
        charset = message.get_content_charset() or "utf-8"
        text = payload.decode(charset, errors="replace") if isinstance(payload, bytes) else ""
        received = [
            Delivery(recipient, envelope.mail_from, subject, text)
            for recipient in envelope.rcpt_tos
        ]
        with self.lock:
            self.deliveries.extend(received)
        return "250 Message accepted for delivery"


class SmtpServer:
    """A running local SMTP server; stop it with :meth:`stop` (or use ``with``)."""

    def __init__(self, refuse_every: int = 500, reject_every: int = 0) -> None:
        self.host = HOST
        self.port = _free_port()
        self._handler = _Handler(refuse_every, reject_every)
        self._controller = Controller(self._handler, hostname=self.host, port=self.port)
        self._controller.start()
        self._stopped = False
        self._stop_lock = threading.Lock()

    @property
    def refuse_every(self) -> int:
        return self._handler.refuse_every

    def deliveries(self) -> list[Delivery]:
        """Every message accepted so far, in order of arrival."""
        with self._handler.lock:
            return list(self._handler.deliveries)

    def refused_recipients(self) -> set[str]:
        """Recipients whose first attempt was answered 451."""
        with self._handler.lock:
            return set(self._handler.refused)

    def stats(self) -> SmtpStats:
        handler = self._handler
        with handler.lock:
            return SmtpStats(
                received=len(handler.deliveries),
                distinct_recipients=len({d.recipient for d in handler.deliveries}),
                refused_temporarily=len(handler.refused),
                rejected=handler.rejected,
                connections=handler.connections,
            )

    def stop(self) -> None:
        """Stop the server's thread (idempotent)."""
        with self._stop_lock:
            if not self._stopped:
                self._stopped = True
                self._controller.stop()

    def __enter__(self) -> SmtpServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_smtp_server(refuse_every: int = 500, reject_every: int = 0) -> SmtpServer:
    """Start an SMTP server on a free port of 127.0.0.1 (see the module docstring)."""
    return SmtpServer(refuse_every, reject_every)


def _free_port() -> int:
    # aiosmtpd's Controller connects to its own port once started, so it needs a
    # real port number up front: ask the OS for one that is free now.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port
