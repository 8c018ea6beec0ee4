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
does (see :mod:`jobq.handlers.email.headers`).

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

The handler depends only on the standard library (``smtplib``, ``email``, ``ssl``).
Its modules, from the bottom up: ``headers`` (header values that cannot inject
headers), ``settings`` (:class:`EmailSettings`), ``message`` (building a
message), ``transport`` (the SMTP connections, :class:`Mailer`) and ``task``
(the task and its installation). This package only re-exports their public names.
"""

from __future__ import annotations

from .message import OutgoingEmail, build_message
from .settings import EmailSettings
from .task import EXTENSION_KEY, TASK_NAME, install, send_email, uninstall
from .transport import Mailer, classify
from .transport import Refused as Refused

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
