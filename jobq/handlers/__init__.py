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

Each handler is a package (``email/``, ``image/``, ``webhook/``) whose
``__init__`` re-exports its public names; the pieces every ``install`` shares
are in ``_install``. Rule: handlers import jobq's core, never the Flask
extension; this module only re-exports.
"""

from __future__ import annotations

from ._install import (
    installed,
    remove_installed,
    replace_installed,
    retry_backoff,
    settings_from_mapping,
)

__all__ = [
    "installed",
    "remove_installed",
    "replace_installed",
    "retry_backoff",
    "settings_from_mapping",
]
