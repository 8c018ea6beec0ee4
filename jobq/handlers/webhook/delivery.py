"""Sending a delivery: one ``requests.Session`` per worker thread, every connection
through the SSRF guard, and the Standard Webhooks headers.

Rule: this module makes the HTTP request and reports the answer as it is; it
decides nothing about retries (``answers``) and knows nothing of jobs.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import requests

from .netguard import NetGuard, Resolver, guarded_adapter, system_resolver
from .redact import UrlRedactor, redacted_urllib3_logs
from .settings import MAX_REDIRECTS, WebhookSettings
from .signing import secret_bytes, sign

__all__ = ["WebhookDeliverer"]


class WebhookDeliverer:
    """Sends deliveries over one ``requests.Session`` per thread, kept between jobs.

    Every session mounts the SSRF guard's adapter for ``allowed_schemes`` only,
    ignores proxy and certificate settings from environment variables
    (``trust_env = False``) and follows redirects only if the settings say so.

    :param settings: the :class:`WebhookSettings`.
    :param resolver: ``resolver(host, port)`` returning :func:`socket.getaddrinfo`
        entries; default the system's. The addresses it returns are the ones
        checked by the guard and the ones connected to.
    :ivar guard: the :class:`~jobq.handlers.webhook.netguard.NetGuard` in use.
    """

    def __init__(self, settings: WebhookSettings, *, resolver: Resolver | None = None) -> None:
        self.settings = settings
        self.guard = NetGuard(
            settings.allow_hosts, settings.allowed_schemes, resolver or system_resolver
        )
        self._key = None if settings.secret is None else secret_bytes(settings.secret)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: set[requests.Session] = set()

    def session(self) -> requests.Session:
        """This thread's session, made on first use."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxies, netrc or CA bundle from the environment
            session.max_redirects = MAX_REDIRECTS
            session.adapters.clear()  # requests mounts unguarded adapters by default
            adapter = guarded_adapter(self.guard)
            for scheme in self.settings.allowed_schemes:
                session.mount(f"{scheme}://", adapter)
            session.headers["User-Agent"] = self.settings.user_agent
            with self._lock:
                self._sessions.add(session)
            self._local.session = session
        return session

    def headers(self, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The Standard Webhooks headers for one request (no signature without a secret)."""
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
        }
        if self._key is not None:
            headers["webhook-signature"] = sign(self._key, message_id, timestamp, body)
        return headers

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, str, str | None]:
        """POST ``body`` to ``url`` (checked by the guard first); return the status,
        an excerpt of the answer and its ``Retry-After`` header.

        Raises :class:`DestinationRefused` and requests' exceptions (whose text
        may spell the URL: :func:`deliver_webhook` redacts it). urllib3's log
        records of the request show no path or query.
        """
        self.guard.check_url(url)
        s = self.settings
        with redacted_urllib3_logs(UrlRedactor(url)):
            response = self.session().post(
                url,
                data=body,
                headers=dict(headers),
                timeout=(s.connect_timeout, s.read_timeout),
                allow_redirects=s.follow_redirects,
                verify=s.cafile or s.verify_tls,
                stream=True,
            )
            with response:
                excerpt = _read_excerpt(response, s.max_response_excerpt)
                return response.status_code, excerpt, response.headers.get("Retry-After")

    def close(self) -> None:
        """Close every thread's session and its connections. Call it once the workers
        stopped; the deliverer stays usable (a later delivery opens a new session)."""
        with self._lock:
            sessions, self._sessions = list(self._sessions), set()
        for session in sessions:
            session.close()
        self._local = threading.local()


def _read_excerpt(response: requests.Response, limit: int) -> str:
    if limit == 0:
        return ""
    data = b""
    try:
        for chunk in response.iter_content(chunk_size=min(limit + 1, 8192)):
            data += chunk
            if len(data) > limit:  # one byte more than kept: it was cut
                break
    except (requests.RequestException, OSError):
        pass  # the status already says how the delivery went; the excerpt is a courtesy
    text = data[:limit].decode("utf-8", errors="replace")
    return " ".join(text.split()) + ("..." if len(data) > limit else "")
