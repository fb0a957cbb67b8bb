"""Which addresses openevi may connect to on behalf of a tenant (the SSRF policy).

Tenants supply URLs (a custom language model's `model_resource`, webhook URLs) that the server then
connects to. Without a check, such a URL could reach the server's own loopback services, the cloud
metadata endpoint (169.254.169.254) or the private network behind it. The rule here: a tenant URL may
only reach globally routable unicast addresses, unless the operator allow-lists the host or network
(`OPENEVI_OUTBOUND_ALLOW`). URLs the operator sets in server settings are trusted and not checked.

The check runs on the addresses a host actually resolves to, at connect time, and the connection is
then made to the checked address (see `openevi.net.clients`), so DNS rebinding cannot slip past it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

ALLOW_SETTING = "OPENEVI_OUTBOUND_ALLOW"
_HINT = f"; the operator can allow it with {ALLOW_SETTING}"

_SHARED_NAT = ipaddress.IPv4Network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")  # Linux routes connects to 0.x.x.x to the local host
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT IPv4-translated addresses
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$")


class OutboundRefused(Exception):
    """A tenant-supplied URL would reach an address the outbound policy forbids.

    `str()` names the address a host name resolved to (for operators' logs and delivery records);
    `tenant_message` leaves it out, so a tenant cannot use refusals to map internal DNS.
    """

    def __init__(self, host: str, reason: str, address: str | None = None) -> None:
        shown = host if address is None or address == host else f"{host} ({address})"
        super().__init__(f"refused to connect to {shown}: {reason}{_HINT}")
        self.host = host
        self.reason = reason
        self.address = address

    @property
    def tenant_message(self) -> str:
        reason = self.reason if self.address in (None, self.host) else f"it resolves to {self.reason}"
        return f"refused to connect to {self.host}: {reason}{_HINT}"


def _inet_aton_part(text: str) -> int | None:
    """One dotted part as inet_aton(3) reads it: 0x… hex, 0… octal, else decimal."""
    if text[:2] in ("0x", "0X"):
        digits, base = text[2:], 16
    elif len(text) > 1 and text.startswith("0"):
        digits, base = text[1:], 8
    else:
        digits, base = text, 10
    if not digits:
        return 0 if base == 16 else None  # glibc reads a bare "0x" as zero
    try:
        return int(digits, base) if digits.isalnum() and digits.isascii() else None
    except ValueError:
        return None


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a numeric host names, in every form a resolver accepts, or None for a name.

    Besides dotted quads and IPv6 (bracketed or not) this reads inet_aton's shorthand forms, which a
    URL parser passes through and the C resolver then turns into an address: `2130706433`,
    `0x7f.1`, `017700000001`, `127.1`.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    text = text.removesuffix(".")
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or any(not p for p in parts):
        return None
    values = [_inet_aton_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    numbers = [v for v in values if v is not None]
    head, last = numbers[:-1], numbers[-1]
    if any(v > 0xFF for v in head) or last >= 1 << (8 * (5 - len(numbers))):
        return None
    value = 0
    for v in head:
        value = value << 8 | v
    return ipaddress.IPv4Address(value << (8 * (5 - len(numbers))) | last)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, translated, NAT64, 6to4), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _TRANSLATED or any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal_reason(ip: IPAddress) -> str | None:
    """Why a tenant URL may not reach `ip` (e.g. "a loopback address"), or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_unspecified:
            return "an unspecified address"
        if ip.is_loopback:
            return "a loopback address"
        v4 = embedded_ipv4(ip)
        if v4 is not None:
            inner = refusal_reason(v4)
            return None if inner is None else f"{inner} in IPv6 form"
        if int(ip) >> 32 == 0:
            return "an IPv4-compatible IPv6 address"  # deprecated form; ::/96 reaches nothing useful
        if ip.is_site_local:
            return "a site-local address"  # fec0::/10: deprecated, but still routed inside some networks
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK):
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED_NAT:
        return "a shared (carrier-grade NAT) address"
    if not ip.is_global:
        return "an address that is not globally routable"
    return None


def _normalize_host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.removesuffix(".")


@dataclass(frozen=True)
class AllowList:
    """Operator exceptions to the policy: host names (`llm.internal`, `*.corp.example`) and networks."""

    hosts: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, spec: str | Iterable[str]) -> AllowList:
        """Read a comma-separated list; a bare address counts as a single-address network."""
        entries = spec.split(",") if isinstance(spec, str) else list(spec)
        hosts: set[str] = set()
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = _normalize_host(raw)
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if not _HOSTNAME.match(entry):
                raise ValueError(f"{ALLOW_SETTING}: {raw.strip()!r} is neither a host name nor an address/CIDR")
            if entry.startswith("*."):
                suffixes.append(entry[1:])
            else:
                hosts.add(entry)
        return cls(frozenset(hosts), tuple(suffixes), tuple(networks))

    def allows_host(self, host: str) -> bool:
        name = _normalize_host(host)
        return name in self.hosts or any(name.endswith(s) for s in self.suffixes)

    def allows_address(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (v4 := embedded_ipv4(ip)) is not None:
            candidates.append(v4)
        return any(c.version == n.version and c in n for c in candidates for n in self.networks)


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver returns for `host`, in its order, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    return found


@dataclass(frozen=True)
class OutboundPolicy:
    """Resolves tenant hosts and checks every address before anything connects to it."""

    allow: AllowList = field(default_factory=AllowList)
    resolver: Resolver = system_resolver

    @classmethod
    def from_setting(cls, spec: str, resolver: Resolver = system_resolver) -> OutboundPolicy:
        """The policy for `OPENEVI_OUTBOUND_ALLOW`'s value (ValueError on a malformed entry)."""
        return cls(AllowList.parse(spec), resolver)

    def check(self, host: str, ip: IPAddress) -> None:
        """Raise `OutboundRefused` unless `host` may be reached at `ip`."""
        if self.allow.allows_host(host) or self.allow.allows_address(ip):
            return
        reason = refusal_reason(ip)
        if reason is not None:
            raise OutboundRefused(_normalize_host(host), reason, str(ip))

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses to connect to for `host`: all of them checked, or `OutboundRefused`.

        One refused address refuses the host, so a name cannot mix a public and an internal record.
        """
        literal = parse_ip_literal(host)
        if literal is not None:
            found = [literal]
        else:
            # A lookup failure (OSError) is not a refusal: the caller treats it as "unreachable" and may retry.
            found = await self.resolver(_normalize_host(host), port)
            if not found:
                raise OSError(f"{host} has no addresses")
        for ip in found:
            self.check(host, ip)
        return found
