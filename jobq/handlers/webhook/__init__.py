"""Signed webhooks from jobs: ``install(queue, settings)`` registers ``jobq.webhook.deliver``.

::

    from jobq.handlers import webhook

    deliver = webhook.install(queue, webhook.WebhookSettings(
        secret=os.environ["WEBHOOK_SECRET"],          # "whsec_..." (Standard Webhooks)
    ))
    deliver.enqueue("https://hooks.example.com/orders", {"order": 42, "state": "paid"},
                    event_type="order.paid")

Each job POSTs its payload as compact JSON, signed the Standard Webhooks way
(``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers);
receivers check it with :func:`verify`. The ``webhook-id`` is the same for every
attempt of a job, so receivers can drop a copy delivered twice.

The answer decides what happens next: a 2xx status completes the job; a lost
or refused connection, a timeout, 408, 425, 429 and 5xx raise
:class:`~jobq.TransientError` (tried again with backoff, or after the
``Retry-After`` the receiver asked for, up to ``max_attempts``); any other status
(other 4xx, and 3xx since redirects are not followed by default), an invalid
URL and a destination the SSRF guard refuses fail the job at once
(:class:`~jobq.Fail`).

The SSRF guard (:mod:`jobq.handlers.webhook.netguard`) is always on: a job can only
reach public addresses, checked on the very address connected to, unless the
host is in ``allow_hosts``. Proxies from environment variables are not used.

This handler needs ``requests`` (``pip install 'jobq[webhooks]'``); jobq's core does not.
Its modules, from the bottom up: ``redact`` (what of a URL may be shown),
``netguard`` (the SSRF guard), ``signing`` (:func:`sign`, :func:`verify`),
``settings`` (:class:`WebhookSettings`), ``checks`` (arguments no attempt could
send), ``answers`` (what a status or an error means), ``delivery`` (the HTTP
sessions, :class:`WebhookDeliverer`) and ``task`` (the task and its
installation). This package only re-exports their public names.
"""

from __future__ import annotations

try:
    import requests  # noqa: F401  (every module of this package needs it)
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "jobq.handlers.webhook needs the 'requests' package; install it with "
        "pip install 'jobq[webhooks]'"
    ) from exc

from .answers import classify_error as classify_error
from .answers import classify_status, parse_retry_after
from .delivery import WebhookDeliverer
from .netguard import DestinationRefused
from .netguard import Resolver as Resolver
from .settings import WebhookSettings
from .signing import HeaderLookup as HeaderLookup
from .signing import WebhookVerificationError, generate_secret, sign, verify
from .signing import secret_bytes as secret_bytes
from .task import EXTENSION_KEY, TASK_NAME, deliver_webhook, install, uninstall

__all__ = [
    "EXTENSION_KEY",
    "TASK_NAME",
    "DestinationRefused",
    "WebhookDeliverer",
    "WebhookSettings",
    "WebhookVerificationError",
    "classify_status",
    "deliver_webhook",
    "generate_secret",
    "install",
    "parse_retry_after",
    "sign",
    "uninstall",
    "verify",
]
