"""Outbound target guard: URL syntax and server-side request forgery (SSRF) protection.

:func:`validate_url` checks a URL when an endpoint is saved: ``http``/``https`` only, a host, no
``user:password@`` credentials, a valid port, at most 2,048 characters, no whitespace or control
characters.

:func:`check_target` runs before every connection: it resolves the host and refuses the request if
*any* resolved address is not a public unicast address, unless that address lies inside one of the
operator's ``allowed_networks`` (``INTERLINK_ALLOWED_TARGET_NETWORKS``). Refused classes, with the
``reason`` code carried by :class:`TargetRefused`:

``unspecified`` (0.0.0.0, ::), ``loopback`` (127/8, ::1, and the names ``localhost`` and
``*.localhost`` without a lookup), ``metadata`` (cloud instance metadata: 169.254.169.254,
169.254.170.2, fd00:ec2::254, 100.100.100.200, 168.63.129.16), ``link_local``
(169.254/16, fe80::/10), ``multicast``, ``private`` (RFC 1918, 100.64/10 shared space, fc00::/7),
``reserved`` (everything else that is not globally routable: documentation, benchmarking, 240/4,
broadcast, ...). IPv6 addresses that embed an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, 6to4
``2002::/16``, Teredo, NAT64 ``64:ff9b::/96``) are judged by the embedded address too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import SplitResult, urlsplit

from interlink.core.errors import ValidationFailed

__all__ = [
    "METADATA_ADDRESSES",
    "IPAddress",
    "IPNetwork",
    "TargetRefused",
    "check_target",
    "classify_address",
    "parse_networks",
    "validate_url",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048
DNS_TIMEOUT_SECONDS = 5.0

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server
    )
)
_PRIVATE_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
_LOOPBACK_ADDRESSES = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetRefused(ValidationFailed):
    """The URL's host is, or resolves to, an address outbound requests may not reach.

    ``reason`` is one of: ``invalid_url``, ``unresolvable``, ``unspecified``, ``loopback``,
    ``metadata``, ``link_local``, ``multicast``, ``private``, ``reserved``. ``address`` is the
    offending address, when there is one.
    """

    def __init__(self, reason: str, detail: str, *, address: str | None = None) -> None:
        extra: dict[str, Any] = {"reason": reason}
        if address is not None:
            extra["address"] = address
        super().__init__(detail, field="url", extra=extra)
        self.reason = reason
        self.address = address


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(message, field="url")


def _split(url: str) -> SplitResult:
    if not isinstance(url, str) or not url.strip():
        raise _invalid("url is required")
    if len(url) > MAX_URL_LENGTH:
        raise _invalid(f"url is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise _invalid("url must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _invalid(f"url is not valid: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise _invalid("url must use http or https")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise _invalid("url must not contain credentials (user:password@)")
    if not parts.hostname:
        raise _invalid("url must have a host")
    if port == 0:
        raise _invalid("url port must be between 1 and 65535")
    host = parts.hostname
    if _literal_ip(host) is None:
        try:
            host.encode("idna")
        except UnicodeError:
            raise _invalid(f"url host {host!r} is not a valid host name") from None
        if any(ch in host for ch in "\\%/?#[]"):
            raise _invalid(f"url host {host!r} is not a valid host name")
    return parts


def validate_url(url: str) -> str:
    """Check an endpoint URL's syntax; return it (trimmed). Raises ``ValidationFailed(field="url")``."""
    url = url.strip() if isinstance(url, str) else url
    _split(url)
    return url


def parse_networks(cidrs: list[str]) -> list[IPNetwork]:
    """Parse CIDR strings (host bits allowed) into networks; raises ``ValueError`` on a bad one."""
    return [ipaddress.ip_network(c, strict=False) for c in cidrs]


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _classify_one(address: IPAddress) -> str | None:
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address in METADATA_ADDRESSES:
        return "metadata"
    if address.is_link_local:
        return "link_local"
    if address.is_multicast:
        return "multicast"
    if any(address.version == n.version and address in n for n in _PRIVATE_NETWORKS):
        return "private"
    if address.is_reserved or not address.is_global:
        return "reserved"
    return None


def classify_address(address: IPAddress) -> str | None:
    """The refusal reason for ``address``, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = _classify_one(embedded)
            if reason is not None:
                return reason
            if address.ipv4_mapped is not None:
                return None
    return _classify_one(address)


def _allowed(address: IPAddress, allowed_networks: list[IPNetwork]) -> bool:
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            candidates.append(embedded)
    return any(
        candidate.version == network.version and candidate in network
        for candidate in candidates
        for network in allowed_networks
    )


def check_address(address: IPAddress, allowed_networks: list[IPNetwork]) -> None:
    """Raise :class:`TargetRefused` unless ``address`` is public or inside ``allowed_networks``."""
    if _allowed(address, allowed_networks):
        return
    reason = classify_address(address)
    if reason is not None:
        raise TargetRefused(
            reason,
            f"url resolves to a {reason.replace('_', '-')} address ({address}), which outbound "
            "requests may not reach; INTERLINK_ALLOWED_TARGET_NETWORKS can allow it",
            address=str(address),
        )


async def check_target(
    url: str,
    allowed_networks: list[IPNetwork],
    *,
    dns_timeout: float = DNS_TIMEOUT_SECONDS,
) -> list[IPAddress]:
    """Resolve ``url``'s host and check every address; return the addresses (all allowed).

    Raises :class:`TargetRefused` when the URL is invalid (``invalid_url``), the name does not
    resolve within ``dns_timeout`` (``unresolvable``), or any address is refused. Callers that connect
    afterwards should connect only to the returned addresses, so a second lookup cannot be steered
    elsewhere (DNS rebinding).
    """
    try:
        parts = _split(url)
    except ValidationFailed as exc:
        raise TargetRefused("invalid_url", exc.detail) from None
    host = parts.hostname or ""
    literal = _literal_ip(host)
    if literal is not None:
        check_address(literal, allowed_networks)
        return [literal]
    host = host.rstrip(".")
    if (host == "localhost" or host.endswith(".localhost")) and not any(
        _allowed(a, allowed_networks) for a in _LOOPBACK_ADDRESSES
    ):
        raise TargetRefused(
            "loopback",
            f"url host {host!r} is a loopback name, which outbound requests may not reach; "
            "INTERLINK_ALLOWED_TARGET_NETWORKS can allow it",
        )
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP),
            dns_timeout,
        )
    except (OSError, UnicodeError, TimeoutError) as exc:
        raise TargetRefused("unresolvable", f"url host {host!r} does not resolve: {exc}") from None
    addresses: list[IPAddress] = []
    for family, *_rest, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise TargetRefused("unresolvable", f"url host {host!r} has no IP address")
    for address in addresses:
        check_address(address, allowed_networks)
    return addresses
