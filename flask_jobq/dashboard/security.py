"""The dashboard's defences: response headers and the CSRF token of its forms.

- Every dashboard answer carries :data:`SECURITY_HEADERS` (a strict
  Content-Security-Policy that the pages pass: no inline script or style, every
  asset from the package itself; framing refused), and pages ``Cache-Control:
  no-store``.
- Forms are protected by a double-submit cookie: a random token in an
  ``HttpOnly``, ``SameSite=Strict`` cookie scoped to the monitor's prefix, and
  the same value in each form's hidden field; a POST is accepted only when both
  are present and equal (:func:`secrets.compare_digest`). Nothing is kept on the
  server, so it works without a ``SECRET_KEY`` and across processes. When the
  app has a secret key, the cookie also carries an HMAC of the token, so a
  cookie planted by a sibling sub-domain is refused too.

Rule: reads the request and the app's secret key; imports Flask only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import current_app, request
from werkzeug.wrappers import Response

CSRF_COOKIE = "jobq_csrf"
"""Name of the cookie holding the form token."""

CSRF_FIELD = "csrf_token"
"""Name of the hidden form field holding the same token."""

NOTICE_COOKIE = "jobq_notice"
"""Name of the short-lived cookie that carries an action's result to the next page."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The policy of every dashboard answer: the page's own assets, nothing inline."""

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
"""Headers set on every dashboard answer (pages, assets, errors)."""

_TOKEN_BYTES = 32


def secure(response: Response, *, page: bool = True) -> Response:
    """Add :data:`SECURITY_HEADERS` to ``response``, and ``Cache-Control: no-store``
    when it is a page (assets may be cached)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if page:
        response.headers["Cache-Control"] = "no-store"
    return response


def _signature(token: str) -> str | None:
    key = current_app.secret_key
    if not key:
        return None
    raw = key.encode() if isinstance(key, str) else bytes(key)
    return hmac.new(raw, b"jobq-csrf:" + token.encode(), hashlib.sha256).hexdigest()


def _cookie_token() -> str | None:
    """The token of the request's cookie when it is well formed (and signed right)."""
    value = request.cookies.get(CSRF_COOKIE, "")
    token, _, signature = value.partition(".")
    if len(token) < 32 or not token.replace("-", "").replace("_", "").isalnum():
        return None
    expected = _signature(token)
    if expected is not None and not secrets.compare_digest(signature, expected):
        return None
    return token


def csrf_token() -> str:
    """The token for this request's forms: the cookie's, or a new one that
    :func:`set_csrf_cookie` will store."""
    token = _cookie_token()
    if token is None:
        token = getattr(request, "_jobq_new_csrf", None) or secrets.token_urlsafe(_TOKEN_BYTES)
        request._jobq_new_csrf = token  # type: ignore[attr-defined]
    return token


def set_csrf_cookie(response: Response, path: str) -> None:
    """Store the token :func:`csrf_token` made for this request, if it made one, in
    the cookie scoped to ``path`` (the monitor's prefix)."""
    token = getattr(request, "_jobq_new_csrf", None)
    if token is None:
        return
    signature = _signature(token)
    response.set_cookie(
        CSRF_COOKIE,
        token if signature is None else f"{token}.{signature}",
        path=path,
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
    )


def csrf_problem() -> str | None:
    """None when the POST carries the cookie's token in its form, else why not."""
    token = _cookie_token()
    sent = request.form.get(CSRF_FIELD, "")
    if token is None:
        return (
            "this browser sent no valid form cookie (cookies off, or the page is older "
            "than the cookie); reload the page and try again"
        )
    if not sent:
        return "the form carried no security token; reload the page and try again"
    if not secrets.compare_digest(sent.encode(), token.encode()):
        return "the form's security token does not match this browser's; reload the page"
    return None
