"""Loaded by every Python process of a documentation page that uses the webhook
fixture (this folder is put on PYTHONPATH): the webhook handler may reach the
hosts in ``JOBQ_DOCS_WEBHOOK_ALLOW`` (the loopback receiver), as a reader's
settings would let their real partner's host through. Nothing else changes."""

from __future__ import annotations

import os

_ALLOW = tuple(os.environ.get("JOBQ_DOCS_WEBHOOK_ALLOW", "").split())

if _ALLOW:
    try:
        from jobq.handlers.webhook.settings import WebhookSettings
    except ImportError:  # requests missing: the page will say so itself
        pass
    else:
        _post_init = WebhookSettings.__post_init__

        def _allowing(self: WebhookSettings) -> None:
            hosts = tuple(self.allow_hosts) + tuple(h for h in _ALLOW if h not in self.allow_hosts)
            object.__setattr__(self, "allow_hosts", hosts)
            _post_init(self)

        WebhookSettings.__post_init__ = _allowing  # type: ignore[method-assign]
