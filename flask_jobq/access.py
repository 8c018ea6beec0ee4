"""Who may use the monitor when the app sets no callback of its own: this machine only.

A check on the client's address alone is not enough. A page on another site can
make a local browser send requests to a local server under the attacker's own
host name (DNS rebinding: the name first resolves to the attacker, then to
127.0.0.1), so the request comes from 127.0.0.1 but names a foreign host; and
behind a reverse proxy on the same machine every request comes from 127.0.0.1.
:func:`is_local_request` therefore also reads the ``Host`` header and the
forwarding headers.
"""

from __future__ import annotations

import ipaddress
import re

from flask import request

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
