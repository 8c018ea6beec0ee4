"""Sending over SMTP: one connection per worker thread, kept open between messages,
and what each of the server's answers means for the job.

Rule: this module talks to the SMTP server and knows nothing of jobs or queues;
it gets messages ready built (``message``) and checks their bytes (``headers``).
"""

from __future__ import annotations

import smtplib
import ssl
import threading

from ... import errors
from ...errors import Fail, JobqError, TransientError
from .headers import POLICY, serialize
from .message import OutgoingEmail
from .settings import EmailSettings

__all__ = ["Mailer", "Refused", "classify"]

_MAX_REPLY_TEXT = 500  # characters of a server reply kept in an error message


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
        data = serialize(outgoing.message, POLICY)
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
            smtp = smtplib.SMTP_SSL(
                s.host,
                s.port,
                local_hostname=s.local_hostname,
                timeout=s.timeout,
                context=self._ssl,
            )
        else:
            smtp = smtplib.SMTP(s.host, s.port, local_hostname=s.local_hostname, timeout=s.timeout)
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
            closing = isinstance(error, smtplib.SMTPResponseException) and (error.smtp_code == 421)
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
    :class:`~jobq.Refused` (in the task's ``discard_on``: no more attempts) for
    5xx replies, refused authentication included; :class:`~jobq.Fail` for a
    missing server feature and an untrusted certificate (settings to fix).
    ``server`` (``host:port``) prefixes the message."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        replies = {r: (code, _text(text)) for r, (code, text) in error.recipients.items()}
        listed = "; ".join(f"{r}: {code} {text}" for r, (code, text) in replies.items())
        message = f"SMTP server {server} refused every recipient: {listed}"
        # Some recipients refused for now: another attempt may reach them (the
        # ones refused for good are then reported in the job's result).
        if any(400 <= code < 500 for code, _ in replies.values()):
            return TransientError(message)
        return errors.Refused(message)
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
        return errors.Refused(message)
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
