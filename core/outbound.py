"""Calls the console makes to addresses people type: webhook targets, front-ends' health URLs.

Such an address must not turn the console into a way into the inside: a target on a loopback,
private, link-local, shared (CGNAT) or otherwise non-public address is refused unless the setting
``OUTBOUND_ALLOWED_NETWORKS`` names its network (tests and the demo allow loopback); a cloud
metadata address is refused always.

The host name is resolved once, every address it resolves to is checked, and the request goes to
the checked address (with the name kept for the Host header and TLS), so a name that resolves to a
public address when checked and to an inside one a moment later (DNS rebinding) gains nothing.
Redirects are never followed, and the answer's body is never read back to anyone.

urllib3 (already under requests) does the HTTP and TLS. requests-hardened was looked at: it checks
only the first address a name resolves to and knows no allowed networks, which is not enough here.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import socket
import urllib.parse
from collections.abc import Mapping

import urllib3
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud instance metadata services: credentials live there. Never a target, whatever the setting.
METADATA_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "169.254.169.254/32",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2/32",  # AWS ECS task metadata
        "100.100.100.200/32",  # Alibaba Cloud
        "fd00:ec2::254/128",  # AWS over IPv6
    )
)
# Not global, whatever ipaddress says about them on this Python (NAT64 and 6to4 carry an IPv4
# address inside, checked on its own below).
EXTRA_REFUSED = tuple(ipaddress.ip_network(net) for net in ("100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15"))


class OutboundRefused(Exception):
    """The address may not be called; ``message`` is a sentence for the person who typed it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OutboundFailed(Exception):
    """The call was allowed but did not go through; ``message`` says how, without the answer's body."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclasses.dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    path: str
    address: str  # the checked address the request goes to


@functools.lru_cache(maxsize=8)
def _networks(raw: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in raw if item.strip())


def allowed_networks() -> tuple[IPNetwork, ...]:
    return _networks(tuple(getattr(settings, "OUTBOUND_ALLOWED_NETWORKS", ()) or ()))


def _inner_addresses(ip: IPAddress) -> list[IPAddress]:
    """The address and any IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64)."""
    found: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in (ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None):
            if inner is not None:
                found.append(inner)
        if ip in ipaddress.ip_network("64:ff9b::/96"):
            found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def refusal_of(ip: IPAddress) -> str:
    """Why ``ip`` may not be called ("" when it may)."""
    addresses = _inner_addresses(ip)
    if any(a in net for a in addresses for net in METADATA_NETWORKS if a.version == net.version):
        return "a cloud metadata address"
    allowed = allowed_networks()
    for a in addresses:
        if any(a.version == net.version and a in net for net in allowed):
            continue
        if a.is_loopback:
            return "a loopback address"
        if a.is_link_local:
            return "a link-local address"
        if a.is_multicast or a.is_unspecified or a.is_reserved:
            return "a reserved address"
        if a.is_private or not a.is_global or any(a.version == n.version and a in n for n in EXTRA_REFUSED):
            return "a private address"
    return ""


def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise OutboundRefused(f"The host {host} cannot be resolved.") from None
    seen: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # Drop an IPv6 scope ("fe80::1%eth0"): the address is what is checked.
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if ip not in seen:
            seen.append(ip)
    if not seen:
        raise OutboundRefused(f"The host {host} cannot be resolved.")
    return seen


def check_url(url: str, *, what: str = "The address") -> Target:
    """Parse, resolve and check ``url``; raise OutboundRefused with a sentence when it may not be called."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise OutboundRefused(f"{what} is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundRefused(f"{what} must be an http:// or https:// URL with a host.")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused(f"{what} must not hold a user name or password: put a token in its path instead.")
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = resolve(host, port)
    for ip in addresses:
        reason = refusal_of(ip)
        if reason:
            raise OutboundRefused(
                f"{what} is refused: {host} resolves to {reason} ({ip}). Calls to the inside of the network "
                "are refused unless OUTBOUND_ALLOWED_NETWORKS allows that network."
            )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(url=url, scheme=parts.scheme, host=host, port=port, path=path, address=str(addresses[0]))


def same_host(url: str, other: str) -> bool:
    """Whether two URLs name the same host (the ports may differ)."""
    try:
        first, second = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(other).hostname
    except ValueError:
        return False
    return bool(first) and (first or "").lower().rstrip(".") == (second or "").lower().rstrip(".")


def post(url: str, *, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
    """POST ``body`` to ``url`` after checking it; return the status code. Redirects are answers, not
    followed; the body of the answer is not read. OutboundRefused or OutboundFailed otherwise."""
    target = check_url(url, what="The webhook")
    host_header = target.host if ":" not in target.host else f"[{target.host}]"
    if target.port != (443 if target.scheme == "https" else 80):
        host_header = f"{host_header}:{target.port}"
    timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
    if target.scheme == "https":
        # The connection goes to the checked address; the certificate must still name the host.
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
        )
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port, timeout=timeout, retries=False, maxsize=1)
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Host": host_header},
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        status = response.status
        response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        raise OutboundFailed(f"the target did not answer: {_reason(exc)}") from None
    finally:
        pool.close()
    return status


def _reason(exc: BaseException) -> str:
    cause = getattr(exc, "reason", None) or exc
    if isinstance(cause, urllib3.exceptions.NewConnectionError) or "refused" in str(cause).lower():
        return "connection refused"
    if isinstance(cause, urllib3.exceptions.TimeoutError | TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(cause, urllib3.exceptions.SSLError):
        return "TLS failed (certificate or protocol)"
    return cause.__class__.__name__
