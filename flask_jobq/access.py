"""Who may use the monitor: :func:`authorise_request` applies the app's callback, and,
when the app sets none, the default rule, whose debug-mode part is this machine only.

A check on the client's address alone is not enough. A page on another site can
make a local browser send requests to a local server under the attacker's own
host name (DNS rebinding: the name first resolves to the attacker, then to
127.0.0.1), so the request comes from 127.0.0.1 but names a foreign host; and
behind a reverse proxy on the same machine every request comes from 127.0.0.1.
:func:`is_local_request` therefore also reads the ``Host`` header and the
forwarding headers.

Rule: reads the request, the app's config and :mod:`flask_jobq.state`; imports
nothing else of the package.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from flask import current_app, request

from .state import EXTENSION_KEY, JobQState

FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP")
"""Headers a proxy adds for the client it forwards; any of them makes a request not local."""

# "localhost", an IPv4 address or a bracketed IPv6 one, then an optional port.
_HOST = re.compile(r"(?P<name>localhost|[0-9.]+|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?", re.IGNORECASE)


def is_local_request() -> bool:
    """True when the current request comes from this machine and names it, directly.

    All three must hold:

    - the client address (``request.remote_addr``) is a loopback address:
      127.0.0.0/8 or ``::1`` (also as ``::ffff:127.x.y.z``);
    - the ``Host`` header names a loopback host: ``localhost``, a 127.x.y.z
      address or ``[::1]``, with or without a port (case does not matter); a
      request without a ``Host`` header is not local;
    - no forwarding header (:data:`FORWARDING_HEADERS`) is present: a reverse
      proxy on this machine forwards other machines' requests from 127.0.0.1.

    Use it as ``JOBQ_MONITOR_AUTH`` to open the monitor to this machine only;
    it is also the rule for an app in debug mode that sets no callback. Call
    it inside a request; raises RuntimeError outside one.
    """
    return (
        _is_loopback_address(request.remote_addr)
        and _names_a_loopback_host(request.headers.get("Host"))
        and not any(header in request.headers for header in FORWARDING_HEADERS)
    )


def _is_loopback_address(text: str | None) -> bool:
    try:
        address = ipaddress.ip_address((text or "").strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # Python 3.11 does not call ::ffff:127.0.0.1 loopback
    return address.is_loopback


def _names_a_loopback_host(host: str | None) -> bool:
    match = _HOST.fullmatch(host or "")
    if match is None:
        return False
    name = match.group("name")
    return name.lower() == "localhost" or _is_loopback_address(name)


_NOT_CONFIGURED = (
    "the jobq monitor needs an authorisation callback: set app.config['JOBQ_MONITOR_AUTH'] "
    "to a function taking no arguments that returns True for requests allowed to see and "
    "change the queue (it can read flask.request), or decorate one with "
    "@jobq_ext.monitor_auth (flask_jobq.is_local_request allows this machine only). "
    "Without one the monitor is open only when app.testing is true, or to local requests "
    "when app.debug is true."
)
_NOT_LOCAL = (
    "without JOBQ_MONITOR_AUTH, an app in debug mode opens the jobq monitor only to "
    "requests from this machine that name it: from a loopback address, with a "
    "Host header of localhost, 127.x.x.x or [::1], and through no proxy (no Forwarded, "
    "X-Forwarded-For, X-Forwarded-Host or X-Real-IP header). Set JOBQ_MONITOR_AUTH to "
    "decide yourself."
)


def authorise_request() -> tuple[dict[str, Any], int] | None:
    """None when the current request may use the monitor, else the 403 answer.

    The rule: ``JOBQ_MONITOR_AUTH`` of the current app, read now (or when it
    is None the extension's ``@jobq_ext.monitor_auth`` callback), must return
    exactly True. Without one, the app is open in testing mode, and to
    :func:`is_local_request` requests in debug mode; otherwise closed.
    """
    app = current_app
    state = app.extensions.get(EXTENSION_KEY)
    if isinstance(state, JobQState):
        check = state.monitor_auth()
    else:  # a blueprint mounted on an app without the extension
        check = app.config.get("JOBQ_MONITOR_AUTH")
    if check is None:
        if app.testing:  # test clients, which need not even set REMOTE_ADDR
            return None
        if not app.debug:
            return _forbidden(_NOT_CONFIGURED)
        # Debug mode is not a licence for the network: a debug server may listen on
        # 0.0.0.0, sit behind a proxy, or be reached by DNS rebinding.
        if not is_local_request():
            return _forbidden(_NOT_LOCAL)
        return None
    if not callable(check):
        raise TypeError(f"JOBQ_MONITOR_AUTH must be a callable or None, got {check!r}")
    # Only True allows: a callback returning a user object or a response by mistake denies.
    if check() is not True:
        return _forbidden("the authorisation callback refused this request")
    return None


def _forbidden(message: str) -> tuple[dict[str, Any], int]:
    return {"status": 403, "error": "Forbidden", "message": message}, 403
