"""The webhook handler's task, ``jobq.webhook.deliver``, and how it is installed.

Rule: the only part of the webhook handler that knows of jobs and queues; it
checks with ``checks``, signs and sends with ``delivery``, judges the answer
with ``answers`` and redacts every error with ``redact``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol

import requests

from ... import codec
from ...context import JobContext, current_job
from ...errors import ConfigurationError, Fail, JobqError, Refused, TransientError
from ...retry_rules import DiscardOn, RetryOn
from ...tasks import Task
from .._install import (
    DISCARD_ON,
    installed,
    named,
    register,
    remove_installed,
    replace_installed,
    settings_of,
)
from .answers import classify_error, classify_status, parse_retry_after
from .checks import check_request
from .delivery import WebhookDeliverer
from .netguard import DestinationRefused, Resolver
from .redact import UrlRedactor
from .settings import WebhookSettings

if TYPE_CHECKING:
    from ...queue import DurableQueue

__all__ = ["EXTENSION_KEY", "TASK_NAME", "deliver_webhook", "install", "uninstall"]

EXTENSION_KEY = "jobq.webhook"
"""Key of the :class:`~jobq.handlers.webhook.WebhookDeliverer` in ``queue.extensions``."""

TASK_NAME = "jobq.webhook.deliver"
"""Name the task is registered under; jobs refer to it."""


def deliver_webhook(
    url: str,
    payload: Any,
    *,
    event_type: str | None = None,
    headers: dict[str, str] | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """POST ``payload`` as JSON to ``url`` (the task ``jobq.webhook.deliver``;
    enqueue it through :func:`install`).

    :param url: the receiver, ``https://...`` (or ``http://...`` if allowed).
    :param payload: any JSON value; sent as compact UTF-8 JSON.
    :param event_type: when given, the body is the Standard Webhooks envelope
        ``{"type": event_type, "timestamp": "<enqueue time, ISO 8601 UTC>",
        "data": payload}`` instead of the bare payload.
    :param headers: extra request headers, e.g. ``{"Authorization": "Bearer ..."}``;
        not the ``webhook-*``, ``Content-Type`` or ``Host`` headers. Values are
        Latin-1 text without control characters or leading white space.
    :param message_id: the ``webhook-id`` (1 to 256 printable ASCII characters);
        default ``msg_<job id>_<digest of the job>``, the same for every attempt.

    Returns ``{"status": 200, "body": "<excerpt of the answer>", "attempt": 1,
    "message_id": "msg_..."}``. Raises :class:`~jobq.TransientError` for
    answers worth trying again (see :func:`classify_status`) and network
    errors, :class:`~jobq.Refused` for the other answers (in the task's
    ``discard_on``), :class:`~jobq.Fail` for invalid arguments, destinations the
    SSRF guard refuses and requests that cannot be made. Whatever went wrong, the error raised
    shows only the scheme, host and port of ``url`` and chains no other
    exception, so neither its message nor the traceback a worker stores with
    the job spells the URL's path, query, fragment or user information.
    """
    try:
        deliverer = installed(
            EXTENSION_KEY, WebhookDeliverer, "jobq.handlers.webhook.install(queue, settings)"
        )
    except ConfigurationError as exc:
        raise Fail(str(exc)) from exc
    context = current_job()
    redact = UrlRedactor(url)
    try:
        return _deliver(deliverer, context, url, payload, event_type, headers, message_id, redact)
    except Exception as exc:  # its text, or an exception chained to it, may spell the URL
        failure = _job_error(exc, redact)
    # Raised outside the except clause, so that no exception is chained to it.
    raise failure from None


def _deliver(
    deliverer: WebhookDeliverer,
    context: JobContext,
    url: str,
    payload: Any,
    event_type: str | None,
    headers: dict[str, str] | None,
    message_id: str | None,
    redact: UrlRedactor,
) -> dict[str, Any]:
    job = context.job
    try:
        check_request(headers, message_id, event_type)
        if event_type is not None:
            created = datetime.fromtimestamp(job.created_at, timezone.utc)
            payload = {
                "type": event_type,
                "timestamp": created.isoformat().replace("+00:00", "Z"),
                "data": payload,
            }
        body = codec.encode(payload).encode()
    except (ValueError, TypeError) as exc:
        raise Fail(f"cannot deliver this webhook: {exc}") from exc
    if message_id is None:
        digest = hashlib.sha256(f"{job.id}:{job.created_at!r}:{job.payload}".encode())
        message_id = f"msg_{job.id}_{digest.hexdigest()[:16]}"
    clock = context.queue.clock
    request_headers = dict(headers or {})
    request_headers.update(deliverer.headers(message_id, int(clock.now()), body))
    status, excerpt, retry_after = deliverer.post(url, body, request_headers)
    outcome = classify_status(status)
    if outcome == "completed":
        return {
            "status": status,
            "body": excerpt,
            "attempt": context.attempt,
            "message_id": message_id,
        }
    answer = (
        f"webhook to {redact.origin} answered {status}: "
        f"{redact.foreign(excerpt) or '(empty body)'}"
    )  # a 404 page may echo the URL
    if outcome == "retry":
        delay = parse_retry_after(
            retry_after, now=clock.now(), cap=deliverer.settings.max_retry_after
        )
        raise TransientError(answer, retry_after=delay)
    if 300 <= status < 400:
        answer += (
            " (a redirect: not followed since follow_redirects is False)"
            if not deliverer.settings.follow_redirects
            else " (a redirect not followed)"
        )
    raise Refused(answer)


def _job_error(error: Exception, redact: UrlRedactor) -> JobqError:
    """The error a delivery that raised ``error`` ends with, its text redacted.

    TransientError, Fail and Refused keep their class (and ``retry_after``); refusals of
    the guard fail; requests' errors are classified by :func:`classify_error`;
    text a request cannot carry (UnicodeError) fails, since no attempt would do
    better; any other exception is a TransientError, retried like any
    exception a task raises.
    """
    where = redact.origin
    if isinstance(error, TransientError):
        return TransientError(redact(str(error)), retry_after=error.retry_after)
    if isinstance(error, Fail):
        return Fail(redact(str(error)))
    if isinstance(error, Refused):
        return Refused(redact(str(error)))
    if isinstance(error, DestinationRefused):
        return Fail(f"webhook to {where} {redact.foreign(str(error))}")
    if isinstance(error, requests.RequestException):
        return classify_error(error, where, redact=redact.foreign)
    text = redact.foreign(f"{type(error).__name__}: {error}")
    if isinstance(error, UnicodeError):
        return Fail(f"cannot deliver the webhook to {where}: {text}")
    return TransientError(f"webhook to {where} failed: {text}")


_P = ParamSpec("_P")


def _check_call(call: Mapping[str, Any]) -> None:
    """Refuse, when a job is enqueued (by any door: ``enqueue``, ``enqueue_many``,
    ``options``, schedules, Flask's ``deliver_webhook``), ``headers``, ``message_id``
    or ``event_type`` that could only fail; ValueError names what is wrong."""
    check_request(call.get("headers"), call.get("message_id"), call.get("event_type"))


class _Install(Protocol[_P]):
    def __call__(
        self,
        queue: DurableQueue,
        settings: WebhookSettings | Mapping[str, Any] | None = None,
        *,
        resolver: Resolver | None = None,
        retry_on: RetryOn | None = None,
        discard_on: DiscardOn | None = DISCARD_ON,
    ) -> Task[_P, dict[str, Any]]: ...


def _installer(task_function: Callable[_P, dict[str, Any]]) -> _Install[_P]:
    # mypy cannot write deliver_webhook's parameter list in an annotation; made
    # this way, install() returns a Task whose .enqueue() mypy checks against it.
    def install(
        queue: DurableQueue,
        settings: WebhookSettings | Mapping[str, Any] | None = None,
        *,
        resolver: Resolver | None = None,
        retry_on: RetryOn | None = None,
        discard_on: DiscardOn | None = DISCARD_ON,
    ) -> Task[_P, dict[str, Any]]:
        """Keep a :class:`WebhookDeliverer` for ``settings`` on ``queue`` and register
        :func:`deliver_webhook` as ``jobq.webhook.deliver``; return the task to
        enqueue with.

        ``settings`` is a :class:`WebhookSettings`, a mapping of its fields
        (``app.config["JOBQ_WEBHOOK"]``) or None for the defaults. ``resolver``
        replaces the system's DNS resolver (see :class:`WebhookDeliverer`).
        ``retry_on`` and ``discard_on`` are the task's retry rules (see
        :mod:`jobq.retry_rules`); by default :class:`~jobq.Refused` answers are
        discarded: pass ``retry_on={jobq.Refused: 3}, discard_on=()`` to retry them.
        Installing again closes the previous deliverer's sessions. Raises
        :class:`~jobq.ConfigurationError` for bad settings.
        """
        settings = settings_of(
            WebhookSettings, WebhookSettings() if settings is None else settings, "JOBQ_WEBHOOK"
        )
        replace_installed(queue, EXTENSION_KEY, WebhookDeliverer(settings, resolver=resolver))
        return register(
            queue,
            task_function,
            name=TASK_NAME,
            max_attempts=settings.max_attempts,
            retry_delay=settings.retry_delay,
            check=_check_call,
            retry_on=retry_on,
            discard_on=discard_on,
        )

    return named(install, "jobq.handlers.webhook")


install = _installer(deliver_webhook)


def uninstall(queue: DurableQueue) -> None:
    """Close the sessions of the handler installed on ``queue`` and remove it.

    Call it after stopping the queue's workers. The task stays registered; its
    jobs fail with a message saying the handler is not installed.
    """
    remove_installed(queue, EXTENSION_KEY)
