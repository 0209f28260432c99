"""Where an outbound webhook may go: never to loopback, private, link-local or metadata addresses.

An endpoint URL is whatever an integrator typed, so a delivery is a request the
suite makes on someone else's behalf (server-side request forgery): aimed at
``http://169.254.169.254/`` it would read the cloud's instance credentials, aimed
at ``http://10.0.0.5:5432`` it would probe the private network. Three checks:

- :func:`url_problem` when an endpoint is created or changed (a 422 with its detail):
  scheme, host, no userinfo or fragment, and a literal IP address's class;
- :class:`GuardedResolver` at send time, after DNS: refused addresses are dropped, and
  when none is left the lookup fails with :class:`RefusedAddress`;
- the socket factory of :func:`guarded_connector`: every address a socket is about to
  connect to is checked again, since aiohttp does not ask the resolver about an IP
  literal (``http://127.0.0.1/`` or a redirect to it) and a redirect is a new
  connection to a new host.

The connection goes to the address that was checked (aiohttp connects to the
resolver's answer), so a name that resolves to a public address for the check and
to a private one for the connection (DNS rebinding) gains nothing.

``webhook_allow_networks`` (:func:`parse_networks`) overrides the refusal for the
networks an operator lists, e.g. ``127.0.0.0/8,::1/128`` for a local receiver.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from ..settings import SettingsError

if TYPE_CHECKING:
    from aiohappyeyeballs import AddrInfoType, SocketFactoryType

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: The networks an operator allows although they are not public (``webhook_allow_networks``).
Networks = tuple[IPNetwork, ...]

#: Longest endpoint URL accepted.
MAX_URL_LENGTH = 2000

_net = ipaddress.ip_network

#: Instance metadata services, which hand out cloud credentials: named apart so a refusal says so.
#: (AWS/GCP/Azure/OpenStack, AWS's IPv6 one, Alibaba's; ECS task metadata is 169.254.170.2.)
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "169.254.169.253", "fd00:ec2::254", "100.100.100.200")
)

#: Address classes no webhook may reach, first match wins (so 0.0.0.0 is "unspecified", not
#: "this network"). Written out rather than read from ``ipaddress``'s flags, whose meaning has
#: changed between Python releases; anything else not globally routable is refused after these.
_REFUSED: tuple[tuple[IPNetwork, str], ...] = (
    (_net("0.0.0.0/32"), "unspecified"),
    (_net("::/128"), "unspecified"),
    (_net("0.0.0.0/8"), "unspecified (this network)"),
    (_net("127.0.0.0/8"), "loopback"),
    (_net("::1/128"), "loopback"),
    (_net("169.254.0.0/16"), "link-local"),
    (_net("fe80::/10"), "link-local"),
    (_net("10.0.0.0/8"), "private"),
    (_net("172.16.0.0/12"), "private"),
    (_net("192.168.0.0/16"), "private"),
    (_net("fc00::/7"), "unique-local"),
    (_net("fec0::/10"), "site-local"),
    (_net("100.64.0.0/10"), "shared (CGNAT)"),
    (_net("224.0.0.0/4"), "multicast"),
    (_net("ff00::/8"), "multicast"),
    (_net("255.255.255.255/32"), "broadcast"),
    (_net("240.0.0.0/4"), "reserved"),
    (_net("192.0.0.0/24"), "reserved (IETF protocol assignments)"),
    (_net("198.18.0.0/15"), "benchmarking"),
    (_net("192.0.2.0/24"), "documentation"),
    (_net("198.51.100.0/24"), "documentation"),
    (_net("203.0.113.0/24"), "documentation"),
    (_net("2001:db8::/32"), "documentation"),
    (_net("3fff::/20"), "documentation"),
    (_net("::/96"), "reserved (IPv4-compatible)"),
    (_net("100::/64"), "discard-only"),
    (_net("64:ff9b:1::/48"), "NAT64 (local use)"),
    (_net("2001::/32"), "Teredo"),
)

#: IPv6 forms that carry an IPv4 address, which is where the packets go: the IPv4 address is
#: the one checked (``::ffff:127.0.0.1`` is loopback).
_MAPPED = _net("::ffff:0:0/96")
_COMPATIBLE = _net("::/96")  # deprecated IPv4-compatible form, ::a.b.c.d
_NAT64 = _net("64:ff9b::/96")
_SIXTOFOUR = _net("2002::/16")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip in _MAPPED or ip in _NAT64 or (ip in _COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIXTOFOUR:
        return ip.sixtofour
    return None


def _allowed(ip: IPAddress, allow: Iterable[IPNetwork]) -> bool:
    return any(ip.version == net.version and ip in net for net in allow)


def refusal(ip: IPAddress | str, allow: Iterable[IPNetwork] = ()) -> str | None:
    """Why a webhook may not be sent to ``ip`` ("loopback", "private", "metadata", …), or None.

    Only globally routable unicast addresses are let through, unless ``allow`` (the
    ``webhook_allow_networks`` setting) contains the address, or the IPv4 address an
    IPv6 form carries. ``ip`` may carry an IPv6 zone (``fe80::1%eth0``).
    """
    address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
    allow = tuple(allow)
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    if _allowed(address, allow) or (embedded is not None and _allowed(embedded, allow)):
        return None
    if embedded is not None:
        inner = refusal(embedded)
        if inner is not None:
            return f"{inner} ({embedded} inside {address})"
    if address in _METADATA:
        return "metadata"
    for network, reason in _REFUSED:
        if address.version == network.version and address in network:
            return reason
    if not address.is_global:
        return "not globally routable"
    return None


def parse_networks(raw: str, *, setting: str = "webhook_allow_networks") -> Networks:
    """The comma-separated CIDRs of ``webhook_allow_networks`` (a bare address is a /32 or /128).

    Raises :class:`SettingsError` naming the setting and the entry that does not parse.
    """
    found: list[IPNetwork] = []
    for part in raw.split(","):
        entry = part.strip()
        if not entry:
            continue
        try:
            # strict: 10.0.0.1/8 is a typo for 10.0.0.0/8 or 10.0.0.1/32, not something to guess.
            found.append(ipaddress.ip_network(entry, strict=True))
        except ValueError as exc:
            env = f"LOGISTICS_{setting.upper()}"
            raise SettingsError(
                f"setting {setting!r} ({env}): {entry!r} is not a network in CIDR notation "
                f"(e.g. 127.0.0.0/8 or ::1/128): {exc}"
            ) from None
    return tuple(found)


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _legacy_ipv4(name: str) -> bool:
    try:
        socket.inet_aton(name)
    except OSError:
        return False
    return True


def url_problem(url: str, *, allow_http: bool, allow: Iterable[IPNetwork] = ()) -> str | None:
    """Why ``url`` cannot be a webhook endpoint (a human detail for a 422), or None.

    Checked when an endpoint is created or changed: an absolute ``https`` URL (``http``
    only with ``allow_http``), with a host, no ``user:password@``, no fragment, at most
    :data:`MAX_URL_LENGTH` characters; a literal IP host is checked with :func:`refusal`
    now, a name after DNS at every send (its addresses can change).
    """
    if len(url) > MAX_URL_LENGTH:
        return f"The URL is longer than {MAX_URL_LENGTH} characters."
    if any(ch.isspace() or ord(ch) < 0x20 or ch == "\\" for ch in url):
        # Parsers disagree about these; the one that decides where the request goes is aiohttp's.
        return "The URL contains whitespace, control characters or a backslash."
    try:
        parsed = URL(url)
        host = parsed.raw_host
        parsed.port  # noqa: B018 (a port out of range raises here)
    except (ValueError, TypeError):
        return "The URL cannot be parsed."
    schemes = ("https", "http") if allow_http else ("https",)
    if not parsed.is_absolute() or parsed.scheme not in schemes:
        return "The URL must be absolute and start with " + " or ".join(f"{s}://" for s in schemes) + "."
    if not host:
        return "The URL has no host."
    if parsed.raw_user is not None or parsed.raw_password is not None:
        return "The URL must not contain a user name or password; put credentials in the path or query."
    if parsed.raw_fragment:
        return "The URL must not have a fragment (#…): it is never sent."
    name = host.rstrip(".").lower()
    ip = _literal_ip(name)
    if ip is None and (name == "localhost" or name.endswith(".localhost")):
        ip = ipaddress.IPv4Address("127.0.0.1")  # RFC 6761: always loopback, whatever DNS says
    if ip is None and _legacy_ipv4(name):
        # 2130706433, 127.1 or 0x7f.1: the C resolver reads them as IPv4 addresses.
        return "The URL's host is an IPv4 address that is not in dotted-quad form."
    if ip is not None:
        reason = refusal(ip, allow)
        if reason is not None:
            return f"The URL's host {ip} is refused ({reason}): webhooks go to public addresses only."
    return None


class RefusedAddress(OSError):
    """No address of a webhook's host may be contacted; :attr:`reasons` says why for each.

    An ``OSError`` with ``errno.EACCES``, so that aiohttp wraps it like any connect
    failure: the request raises :class:`aiohttp.ClientConnectorError` (its subclass
    :class:`aiohttp.ClientConnectorDNSError` when it came from the resolver) whose
    ``os_error`` is this exception. :func:`refused` finds it.
    """

    def __init__(self, host: str, reasons: tuple[tuple[str, str], ...]) -> None:
        self.host = host
        #: (address, why) for every address of the host that was refused.
        self.reasons = reasons
        told = ", ".join(f"{address} is {why}" for address, why in reasons) or "no address"
        super().__init__(errno.EACCES, f"webhook address refused: {host}: {told}")


def refused(exc: BaseException) -> RefusedAddress | None:
    """The :class:`RefusedAddress` behind an aiohttp exception, or None for any other failure.

    For the dispatcher: ``except aiohttp.ClientConnectorError as exc`` then
    ``if (why := refused(exc)) is not None`` — a refusal (not retried the same way:
    the endpoint's address will not become public by waiting) — ``else`` an ordinary
    connect failure. Looks at ``os_error`` and the ``__cause__``/``__context__`` chain.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, RefusedAddress):
            return current
        todo.extend((getattr(current, "os_error", None), current.__cause__, current.__context__))
    return None


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver (threaded ``getaddrinfo`` unless aiodns is installed), minus refused
    addresses; raises :class:`RefusedAddress` when none is left."""

    def __init__(self, allow: Iterable[IPNetwork] = (), resolver: AbstractResolver | None = None) -> None:
        self.allow: Networks = tuple(allow)
        self._resolver = resolver if resolver is not None else aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._resolver.resolve(host, port, family)
        kept: list[ResolveResult] = []
        refusals: list[tuple[str, str]] = []
        for answer in answers:
            reason = refusal(answer["host"], self.allow)
            if reason is None:
                kept.append(answer)
            else:
                refusals.append((answer["host"], reason))
        if not kept:
            raise RefusedAddress(host, tuple(refusals))
        return kept

    async def close(self) -> None:
        await self._resolver.close()


def _guarded_socket(allow: Networks) -> SocketFactoryType:
    def make(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, address = addr_info
        reason = refusal(str(address[0]), allow)
        if reason is not None:
            raise RefusedAddress(str(address[0]), ((str(address[0]), reason),))
        return socket.socket(family=family, type=type_, proto=proto)

    return make


def guarded_connector(
    allow: Iterable[IPNetwork] = (), *, resolver: AbstractResolver | None = None, **kwargs: Any
) -> aiohttp.TCPConnector:
    """A :class:`aiohttp.TCPConnector` that connects to permitted addresses only.

    Its resolver is a :class:`GuardedResolver` around ``resolver`` (aiohttp's default
    when None), and its socket factory checks the address of every socket before it
    connects (IP literals and redirects included). ``kwargs`` go to the connector
    (``limit``, ``limit_per_host``, ``ttl_dns_cache``, ``ssl``…); build it inside the
    running event loop. Keep the session's ``trust_env=False`` (aiohttp's default):
    through an HTTP proxy, the address checked would be the proxy's.
    """
    if "socket_factory" in kwargs:
        raise TypeError("guarded_connector() sets socket_factory itself")
    networks = tuple(allow)
    return aiohttp.TCPConnector(
        resolver=GuardedResolver(networks, resolver), socket_factory=_guarded_socket(networks), **kwargs
    )
