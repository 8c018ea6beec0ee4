"""Ready-made tasks: email over SMTP, image processing with Pillow, signed webhooks.

Each handler module has the same shape:

- a frozen settings dataclass (``EmailSettings``, ``ImageSettings``,
  ``WebhookSettings``) with safe defaults, buildable from a plain mapping
  (``Settings.from_mapping(app.config["JOBQ_EMAIL"])``);
- a task function (``send_email``, ``process_image``, ``deliver_webhook``) that
  runs inside a job and uses the settings installed on that job's queue;
- ``install(queue, settings)``, which keeps the settings (and the connections
  made from them) on the queue and registers the task function under a fixed
  name, returning the :class:`~jobq.Task` to enqueue with::

      from jobq.handlers import email

      send_email = email.install(queue, email.EmailSettings(host="smtp.example.com"))
      send_email.enqueue(to="ada@example.com", subject="Welcome", text="Hello!")

The Flask extension installs them from ``JOBQ_EMAIL``, ``JOBQ_IMAGE`` and
``JOBQ_WEBHOOK``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .. import backoff as backoffs
from ..context import current_job
from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..queue import DurableQueue

S = TypeVar("S")
H = TypeVar("H")


def settings_from_mapping(cls: type[S], mapping: Mapping[str, Any], what: str) -> S:
    """Build the settings dataclass ``cls`` from ``mapping``; unknown keys are refused
    with the list of known ones (a typo must not silently keep a default)."""
    if not isinstance(mapping, Mapping):
        raise ConfigurationError(f"{what} must be a mapping of settings, got {mapping!r}")
    known = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise ConfigurationError(
            f"unknown {what} setting(s) {', '.join(map(repr, unknown))}; "
            f"known settings: {', '.join(known)}"
        )
    try:
        return cls(**mapping)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"invalid {what} settings: {exc}") from exc


def installed(key: str, kind: type[H], install_hint: str) -> H:
    """The object a handler's ``install`` kept under ``key`` on the current job's queue.

    Raises RuntimeError outside a job, ConfigurationError when nothing was installed.
    """
    found = current_job().queue.extensions.get(key)
    if not isinstance(found, kind):
        raise ConfigurationError(
            f"the {key} handler is not installed on this queue; call {install_hint} first"
        )
    return found


def replace_installed(queue: DurableQueue, key: str, value: object) -> None:
    """Keep ``value`` on ``queue`` under ``key``, closing what was there before (the
    connections of an earlier install)."""
    previous = queue.extensions.get(key)
    queue.extensions[key] = value
    _close(previous)


def remove_installed(queue: DurableQueue, key: str) -> None:
    """Forget what was kept under ``key`` and close its connections."""
    _close(queue.extensions.pop(key, None))


def retry_backoff(first_delay: float) -> backoffs.Backoff:
    """Exponential backoff with jitter from ``first_delay`` seconds, capped at an hour
    (or at ``first_delay`` if longer); no delay when it is 0."""
    if first_delay <= 0:
        return backoffs.fixed(0.0)
    return backoffs.exponential(base=first_delay, cap=max(3600.0, first_delay))


def _close(value: object) -> None:
    close = getattr(value, "close", None)
    if callable(close):
        close()
