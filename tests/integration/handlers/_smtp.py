"""A real SMTP server for the email handler's tests: aiosmtpd on 127.0.0.1, in a thread.

It records every message it accepts (envelope and raw bytes) and every
connection, and can be told to misbehave: refuse a recipient (451, 550, 421),
refuse DATA, drop the connection during DATA, close every open connection
(as a server does with idle ones), require a login, speak TLS.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

HOST = "127.0.0.1"
DROP = "drop the connection"  # a DATA reply that closes the connection instead


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes

    def parsed(self) -> EmailMessage:
        message = message_from_bytes(self.content.replace(b"\r\n", b"\n"), policy=policy.default)
        assert isinstance(message, EmailMessage)
        return message

    def header_names(self) -> list[str]:
        """Names of the top-level headers as received, in order, nothing decoded; a
        lone CR or LF ends a line too, as it does for lenient mail software."""
        names: list[str] = []
        for line in re.split(rb"\r\n|\r|\n", self.content):
            if not line:  # the empty line that ends the header block
                break
            if line[:1] not in (b" ", b"\t"):  # not a folded continuation
                names.append(line.split(b":", 1)[0].decode("ascii", "replace"))
        return names

    def header_block_is_clean(self) -> bool:
        """Whether every line before the first empty one is printable ASCII (or TAB)
        ended by CRLF: no lone CR or LF, NUL or other control byte."""
        block = self.content.partition(b"\r\n\r\n")[0]
        return re.fullmatch(rb"[\t\x20-\x7e]+(?:\r\n[\t\x20-\x7e]+)*", block) is not None

    def body(self) -> bytes:
        """The bytes after the header block, as received."""
        return self.content.partition(b"\r\n\r\n")[2]


@dataclass
class _Handler:
    """aiosmtpd hooks; they run in the server's event-loop thread."""

    login: tuple[str, str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    received: list[Received] = field(default_factory=list)
    sessions: list[Any] = field(default_factory=list)
    transports: list[asyncio.BaseTransport] = field(default_factory=list)
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    rcpt_always: dict[str, str] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        with self.lock:
            if not any(s is session for s in self.sessions):
                self.sessions.append(session)
                self.transports.append(server.transport)
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.login is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.lock:
            queued = self.rcpt_replies.get(address)
            reply = queued.pop(0) if queued else self.rcpt_always.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            reply = self.data_replies.pop(0) if self.data_replies else None
            if reply == DROP:
                server.transport.close()
                return "421 closing"  # never reaches the client
            if reply is not None:
                return reply
            self.received.append(
                Received(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.content))
            )
        return "250 Message accepted"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.login == (
            data.login.decode(),
            data.password.decode(),
        )
        return AuthResult(success=ok, handled=False)  # False: aiosmtpd answers 535


class SmtpServer:
    """A running server on a free port of 127.0.0.1; :meth:`stop` it.

    :param login: (user, password) the server requires before MAIL FROM.
    :param starttls: a server TLS context offered through STARTTLS.
    :param implicit_tls: a server TLS context used from the first byte (SMTPS).
    """

    def __init__(
        self,
        *,
        login: tuple[str, str] | None = None,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = HOST
        self.port = free_port()
        self.handler = _Handler(login=login)
        options: dict[str, Any] = {}
        if login is not None:
            options.update(authenticator=self.handler.authenticate, auth_require_tls=False)
        if starttls is not None:
            options["tls_context"] = starttls
        self._controller = Controller(
            self.handler,
            hostname=self.host,
            port=self.port,
            ssl_context=implicit_tls,
            server_hostname="smtp.test",
            **options,
        )
        self._controller.start()

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    @property
    def connections(self) -> int:
        """SMTP sessions that said EHLO/HELO (aiosmtpd's own start-up probe does not)."""
        with self.handler.lock:
            return len(self.handler.sessions)

    def refuse(self, address: str, reply: str, *, times: int | None = 1) -> None:
        """Answer ``reply`` to RCPT TO ``address`` the next ``times`` times (None: always)."""
        with self.handler.lock:
            if times is None:
                self.handler.rcpt_always[address] = reply
            else:
                self.handler.rcpt_replies.setdefault(address, []).extend([reply] * times)

    def refuse_data(self, *replies: str) -> None:
        """Answer the next DATA commands with these replies (or :data:`DROP`)."""
        with self.handler.lock:
            self.handler.data_replies.extend(replies)

    def close_connections(self, farewell: bytes = b"") -> None:
        """Close every client connection, as a server does with idle ones; ``farewell``
        (e.g. ``b"421 4.4.2 idle timeout\\r\\n"``) is written first."""
        done = threading.Event()

        def close_all() -> None:
            with self.handler.lock:
                transports = list(self.handler.transports)
            for transport in transports:
                if not transport.is_closing():
                    if farewell:
                        transport.write(farewell)  # type: ignore[attr-defined]
                    transport.close()
            done.set()

        self._controller.loop.call_soon_threadsafe(close_all)
        assert done.wait(5), "the server's loop did not run close_all"

    def stop(self) -> None:
        self._controller.stop()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and smtp.test) made with the openssl
    command; returns (certificate, key) PEM files."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=smtp.test",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:smtp.test",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
