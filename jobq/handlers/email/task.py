"""The email handler's task, ``jobq.email.send``, and how it is installed on a queue.

Rule: the only part of the email handler that knows of jobs and queues; it
builds with ``message`` and sends with ``transport``.
"""

from __future__ import annotations

import hashlib
import smtplib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol

from ...context import current_job
from ...errors import ConfigurationError, Fail
from ...retry_rules import DiscardOn, RetryOn
from .._install import (
    DISCARD_ON,
    installed,
    named,
    register,
    remove_installed,
    replace_installed,
    settings_of,
)
from .message import build_message
from .settings import EmailSettings
from .transport import Mailer, classify

if TYPE_CHECKING:
    from ...queue import DurableQueue
    from ...tasks import Task

__all__ = ["EXTENSION_KEY", "TASK_NAME", "install", "send_email", "uninstall"]

EXTENSION_KEY = "jobq.email"
"""Key of the :class:`~jobq.handlers.email.Mailer` in ``queue.extensions``."""

TASK_NAME = "jobq.email.send"
"""Name the task is registered under; jobs refer to it."""


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

    Fails the job at once (:class:`~jobq.Fail`) for invalid arguments and for a
    queue where the handler is not installed; raises :class:`~jobq.Refused`
    (in the task's ``discard_on``) for permanent refusals and
    :class:`~jobq.TransientError` for temporary ones. The Message-ID is
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
            to,
            subject,
            text=text,
            html=html,
            sender=sender,
            cc=cc,
            bcc=bcc,
            reply_to=reply_to,
            headers=headers,
            attachments=attachments,
            settings=settings,
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


_P = ParamSpec("_P")


class _Install(Protocol[_P]):
    def __call__(
        self,
        queue: DurableQueue,
        settings: EmailSettings | Mapping[str, Any] | None = None,
        *,
        retry_on: RetryOn | None = None,
        discard_on: DiscardOn | None = DISCARD_ON,
    ) -> Task[_P, dict[str, Any]]: ...


def _installer(task_function: Callable[_P, dict[str, Any]]) -> _Install[_P]:
    # mypy cannot write send_email's parameter list in an annotation; made this
    # way, install() returns a Task whose .enqueue() mypy checks against it.
    def install(
        queue: DurableQueue,
        settings: EmailSettings | Mapping[str, Any] | None = None,
        *,
        retry_on: RetryOn | None = None,
        discard_on: DiscardOn | None = DISCARD_ON,
    ) -> Task[_P, dict[str, Any]]:
        """Keep a :class:`Mailer` for ``settings`` on ``queue`` and register
        :func:`send_email` as ``jobq.email.send``; return the task to enqueue with.

        ``settings`` is an :class:`EmailSettings`, a mapping of its fields
        (``app.config["JOBQ_EMAIL"]``) or None for the defaults. ``retry_on`` and
        ``discard_on`` are the task's retry rules (see :mod:`jobq.retry_rules`);
        by default :class:`~jobq.Refused` replies (5xx) are discarded: pass
        ``retry_on={jobq.Refused: 3}, discard_on=()`` to retry them. Installing again
        closes the previous mailer's connections and uses the new settings.
        Raises :class:`~jobq.ConfigurationError` for bad settings.
        """
        settings = settings_of(
            EmailSettings, EmailSettings() if settings is None else settings, "JOBQ_EMAIL"
        )
        replace_installed(queue, EXTENSION_KEY, Mailer(settings))
        return register(
            queue,
            task_function,
            name=TASK_NAME,
            max_attempts=settings.max_attempts,
            retry_delay=settings.retry_delay,
            retry_on=retry_on,
            discard_on=discard_on,
        )

    return named(install, "jobq.handlers.email")


install = _installer(send_email)


def uninstall(queue: DurableQueue) -> None:
    """Close the SMTP connections of the handler installed on ``queue`` and remove it.

    Call it after stopping the queue's workers. The task stays registered; its
    jobs fail with a message saying the handler is not installed.
    """
    remove_installed(queue, EXTENSION_KEY)
