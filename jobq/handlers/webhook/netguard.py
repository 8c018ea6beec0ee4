"""The webhook handler's SSRF guard: which network destinations a job may reach.

A webhook URL comes from a job's payload, so it may come from a user. Left
alone, ``https://169.254.169.254/latest/meta-data/`` or ``http://localhost:6379/``
would make the worker reach a cloud metadata service or an internal server.
:class:`NetGuard` refuses every destination that is not a public address:
loopback, private (RFC 1918, ``fc00::/7``), link-local (``169.254.0.0/16``,
``fe80::/10``), unspecified, multicast, reserved and documentation ranges,
carrier-grade NAT (``100.64.0.0/10``), and IPv6 forms that embed such an IPv4
address (IPv4-mapped ``::ffff:127.0.0.1``, NAT64, 6to4; Teredo is refused
outright). Trusted internal hosts are let through by ``allow_hosts``.

The check is made where the socket is opened: :func:`guarded_adapter` mounts
urllib3 connection classes whose ``_new_conn`` resolves the host once, checks
every address it got, and connects to those same checked addresses. No second
DNS lookup happens between the check and the connect, so DNS rebinding cannot
slip a private address in; TLS still verifies the certificate (and sends SNI)
for the host name in the URL. Redirects, when followed, go through the same
connections and are checked the same way.

This module has no settings of its own and knows nothing of jobs; the
webhook handler builds one guard from its settings.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import requests.adapters
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from ...errors import JobqError

__all__ = [
    "FORBIDDEN_NETWORKS",
    "AddressInfo",
    "DestinationRefused",
    "NetGuard",
    "Resolver",
    "forbidden_reason",
    "guarded_adapter",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

AddressInfo = tuple[int, int, int, str, tuple[Any, ...]]
"""One entry of :func:`socket.getaddrinfo`: (family, type, proto, canonname, sockaddr)."""

Resolver = Callable[[str, int], Sequence[AddressInfo]]
"""``resolver(host, port)`` returns :func:`socket.getaddrinfo`-style entries for a
TCP connection to ``host``; raises :class:`socket.gaierror` when it cannot."""


def system_resolver(host: str, port: int) -> Sequence[AddressInfo]:
    """The operating system's resolver (:func:`socket.getaddrinfo`), TCP addresses only."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


class DestinationRefused(JobqError, ValueError):
    """The guard refused a URL or an address. ``str(error)`` says what and why."""


def _networks(*cidrs: str) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), why) for cidr, why in (c.split("=") for c in cidrs))


FORBIDDEN_NETWORKS: tuple[tuple[IPNetwork, str], ...] = _networks(
    "0.0.0.0/8=unspecified ('this network')",
    "10.0.0.0/8=private (RFC 1918)",
    "100.64.0.0/10=carrier-grade NAT (shared)",
    "127.0.0.0/8=loopback",
    "169.254.0.0/16=link-local (cloud metadata)",
    "172.16.0.0/12=private (RFC 1918)",
    "192.0.0.0/24=IETF protocol assignment",
    "192.0.2.0/24=documentation",
    "192.88.99.0/24=6to4 relay",
    "192.168.0.0/16=private (RFC 1918)",
    "198.18.0.0/15=benchmarking",
    "198.51.100.0/24=documentation",
    "203.0.113.0/24=documentation",
    "224.0.0.0/4=multicast",
    "240.0.0.0/4=reserved",
    "::/128=unspecified",
    "::1/128=loopback",
    "::/96=IPv4-compatible (deprecated)",
    "64:ff9b:1::/48=local NAT64",
    "100::/64=discard-only",
    "2001::/32=Teredo",
    "2001:db8::/32=documentation",
    "2001::/23=IETF protocol assignment",
    "fc00::/7=private (unique local)",
    "fe80::/10=link-local",
    "fec0::/10=site-local (deprecated)",
    "ff00::/8=multicast",
)
"""Networks never connected to unless allow-listed, each with the reason given when
refused. IPv6 addresses embedding an IPv4 address (``::ffff:0:0/96``,
``64:ff9b::/96``, ``2002::/16``) are judged by that IPv4 address."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination (e.g. ``"loopback"``), or None if it is.

    IPv6 forms that embed an IPv4 address are judged by that IPv4 address.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = forbidden_reason(embedded)
            return None if reason is None else f"{reason}, as {embedded} embedded in IPv6"
        address = ipaddress.IPv6Address(int(address))  # drops a %zone: never allowed anyway
    for network, why in FORBIDDEN_NETWORKS:
        if address in network:
            return why
    # Belt and braces for ranges the table may lack (ipaddress knows IANA's registry).
    if address.is_multicast or address.is_reserved or address.is_link_local:
        return "reserved or link-local"
    if address.is_loopback or address.is_unspecified or address.is_private:
        return "not public"
    if not address.is_global:
        return "not globally routable"
    return None


def _plain(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address as the IPv4 address it is; others unchanged."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# Legacy IPv4 spellings that resolvers (inet_aton) accept: 2130706433, 0x7f000001,
# 0177.0.0.1, 127.1. Such a host is judged as the address it names, without DNS.
_LEGACY_IPV4 = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}\.?", re.I)


def parse_ip(host: str) -> IPAddress | None:
    """The address ``host`` spells (``[::1]``, ``127.0.0.1``, ``0x7f000001``), or None
    for a host name."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text.rstrip(".")))
        except (OSError, ValueError):
            # Not an address after all (too large a number...): no resolver maps
            # it to an address either, so it is left to fail as a host name.
            return None
    return None


def _normal_host(host: str) -> str:
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".").lower()


class NetGuard:
    """Decides which URLs and addresses a webhook may reach.

    :param allow_hosts: host names (exact, case-insensitive), IP addresses and
        CIDR networks (``"10.1.0.0/16"``) let through although not public.
        A host name allowed this way may resolve to any address.
    :param allowed_schemes: URL schemes accepted, among ``"http"`` and ``"https"``.
    :param resolver: how host names are resolved (default: the system's
        :func:`socket.getaddrinfo`); the addresses it returns are the ones
        checked and the ones connected to.

    Raises ValueError for an entry of ``allow_hosts`` that is neither a host
    name nor an address nor a network.
    """

    def __init__(
        self,
        allow_hosts: Iterable[str] = (),
        allowed_schemes: Iterable[str] = ("https", "http"),
        resolver: Resolver = system_resolver,
    ) -> None:
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in allow_hosts:
            kind, value = parse_allow_entry(entry)
            if kind == "name":
                names.add(str(value))
            else:
                assert not isinstance(value, str)
                networks.append(value)
        self.allowed_names = frozenset(names)
        self.allowed_networks = tuple(networks)
        self.allowed_schemes = frozenset(s.lower() for s in allowed_schemes)
        self.resolver = resolver

    def host_allowed(self, host: str) -> bool:
        """True if ``host`` is an allow-listed name or an address inside the allowlist."""
        if _normal_host(host) in self.allowed_names:
            return True
        address = parse_ip(host)
        return address is not None and self._address_allowed(address)

    def _address_allowed(self, address: IPAddress) -> bool:
        address = _plain(address)
        return any(
            address.version == network.version and address in network
            for network in self.allowed_networks
        )

    def check_address(self, address: IPAddress | str, *, host: str | None = None) -> None:
        """Raise :class:`DestinationRefused` unless ``address`` (reached for ``host``)
        is public or allow-listed."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if self._address_allowed(ip) or (host is not None and self.host_allowed(host)):
            return
        reason = forbidden_reason(ip)
        if reason is not None:
            name = "" if host is None or parse_ip(host) == ip else f" (host {host!r})"
            raise DestinationRefused(
                f"refused to connect to {ip}{name}: {reason} address; webhooks may only "
                "reach public addresses unless the host is listed in allow_hosts"
            )

    def check_url(self, url: str) -> None:
        """Check what can be checked of ``url`` without DNS: a scheme in
        ``allowed_schemes``, a host, and a host spelled as an address (in any
        form a resolver accepts) that is public or allow-listed.

        Raises :class:`DestinationRefused` (a ValueError) for anything else.
        Host names are checked when connecting (:func:`guarded_adapter`).
        Messages never quote the URL, whose path or query may hold a token.
        """
        if not isinstance(url, str):
            raise DestinationRefused(f"refused: the URL must be a string, got {type(url).__name__}")
        try:
            parts = urllib.parse.urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018  (raises ValueError for a bad port)
        except ValueError as exc:
            why = _why_invalid(exc)
            raise DestinationRefused(f"refused: the URL is not valid ({why})") from None
        scheme = parts.scheme.lower()
        if scheme not in self.allowed_schemes:
            allowed = ", ".join(sorted(self.allowed_schemes))
            raise DestinationRefused(
                f"refused: URL scheme {scheme or '(none)'!r} is not allowed "
                f"(allowed_schemes: {allowed})"
            )
        if not host:
            raise DestinationRefused("refused: the URL has no host")
        if any(ord(char) < 0x21 or char == "\x7f" for char in host):
            raise DestinationRefused("refused: the URL's host contains control characters")
        address = parse_ip(host)
        if address is not None:
            self.check_address(address, host=host)

    def resolve(self, host: str, port: int) -> list[AddressInfo]:
        """Resolve ``host`` (an address is taken as it is, in any spelling
        :func:`parse_ip` reads) and check every address; return them all, or raise
        :class:`DestinationRefused` if any is refused (a name with one private
        address among public ones is suspect as a whole). Raises
        :class:`socket.gaierror` when the name does not resolve."""
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        literal = parse_ip(host)
        if literal is None:
            found = list(self.resolver(host, port))
        elif literal.version == 4:  # an address needs no resolver (nor DNS)
            found = [
                (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (str(literal), port))
            ]
        else:
            found = [
                (
                    socket.AF_INET6,
                    socket.SOCK_STREAM,
                    socket.IPPROTO_TCP,
                    "",
                    (str(literal), port, 0, 0),
                )
            ]
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, f"{host!r} resolved to no address")
        for entry in found:
            self.check_address(str(entry[4][0]), host=host)
        return found


def _why_invalid(error: ValueError) -> str:
    """urllib's reason a URL is invalid, without the port text it may quote
    ("Port could not be cast to integer value as '...'")."""
    text = str(error)
    return "the port is not a number" if "Port could not be cast" in text else text


def parse_allow_entry(entry: str) -> tuple[str, str | IPNetwork]:
    """One ``allow_hosts`` entry as ``("name", host)`` or ``("network", network)``.

    Raises ValueError naming the entry when it is neither.
    """
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError(
            f"allow_hosts entries must be host names, addresses or networks, got {entry!r}"
        )
    text = _normal_host(entry)
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        pass
    else:
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
            # ::ffff:10.0.0.0/104 is 10.0.0.0/8: addresses are compared unmapped.
            network = ipaddress.IPv4Network(
                (int(network.network_address) & 0xFFFFFFFF, max(network.prefixlen - 96, 0))
            )
        return "network", network
    address = parse_ip(text)
    if address is not None:
        return "network", ipaddress.ip_network(_plain(address))
    if "/" in text or not re.fullmatch(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?", text):
        raise ValueError(
            f"allow_hosts entry {entry!r} is not a host name, an IP address or a CIDR network"
        )
    return "name", text


# -- urllib3 / requests wiring ----------------------------------------------------------


class _GuardedConnectionMixin:
    """``_new_conn`` of urllib3's connections, resolving and connecting through a guard."""

    guard: NetGuard
    host: str
    port: int
    timeout: float | None
    source_address: tuple[str, int] | None
    socket_options: Any

    def _conn(self) -> HTTPConnection:
        assert isinstance(self, HTTPConnection)
        return self

    def _new_conn(self) -> socket.socket:
        try:
            found = self.guard.resolve(self.host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self._conn(), exc) from exc
        error: OSError | None = None
        for family, kind, proto, _, sockaddr in found:
            # Connect to exactly the address that was checked: no second lookup.
            sock = socket.socket(family, kind, proto)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                if self.timeout is not None:
                    sock.settimeout(self.timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                error = exc
                if isinstance(exc, TimeoutError):
                    raise ConnectTimeoutError(
                        self._conn(),
                        f"Connection to {self.host} timed out. (connect timeout={self.timeout})",
                    ) from exc
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        raise NewConnectionError(
            self._conn(), f"Failed to establish a new connection: {error}"
        ) from error


def _pool_classes(guard: NetGuard) -> dict[str, type[HTTPConnectionPool]]:
    class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
        pass

    class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
        pass

    GuardedHTTPConnection.guard = guard
    GuardedHTTPSConnection.guard = guard

    class GuardedHTTPConnectionPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    return {"http": GuardedHTTPConnectionPool, "https": GuardedHTTPSConnectionPool}


class GuardedAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter whose connections go through :class:`NetGuard` and which
    refuses proxies (a proxy would connect on the guard's behalf)."""

    def __init__(self, guard: NetGuard, **kwargs: Any) -> None:
        self.guard = guard
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.guard)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # The proxy's URL is not quoted: it may hold a password.
        raise DestinationRefused(
            "refused to use a proxy: webhook deliveries do not go through proxies"
        )

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a GuardedAdapter cannot be pickled")


def guarded_adapter(guard: NetGuard, *, pool_maxsize: int = 10) -> GuardedAdapter:
    """A requests adapter to mount for each scheme in ``guard.allowed_schemes``; it
    never retries by itself (jobq does, with backoff)."""
    return GuardedAdapter(guard, max_retries=0, pool_maxsize=pool_maxsize)
