"""Keep model-server requests away from internal addresses (SSRF guard).

A researcher can type any base URL into an endpoint, and a worker fetches it. Unless its host is
listed in the ``PREFHUB_ALLOWED_MODEL_HOSTS`` setting (or environment variable, comma-separated),
a URL is refused when its host resolves to a loopback, link-local (cloud metadata lives at
169.254.169.254), private, shared, reserved, multicast or otherwise non-global address.

Each request is pinned to the address that was checked (the URL carries the IP, with the original
Host header and TLS server name), so a DNS answer that changes between the check and the connect
(rebinding) cannot move the request elsewhere. Redirects are never followed by the caller.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

from generation.backends.base import BackendConfigError

SETTING = "PREFHUB_ALLOWED_MODEL_HOSTS"


class UnsafeURL(BackendConfigError):
    """The URL points somewhere a worker must not fetch."""


class UnresolvableHost(UnsafeURL):
    """The host does not resolve (here, now): not known to be unsafe, but nothing to connect to.
    Endpoint validation lets it pass (workers may see other DNS); a request treats it as a
    connection error (retried, then the prompt fails)."""


def allowed_hosts() -> set[str]:
    """Hosts exempt from the address check (lower-case, without brackets)."""
    hosts = getattr(settings, SETTING, None) if settings.configured else None
    if hosts is None:
        hosts = os.environ.get(SETTING, "").split(",")
    if isinstance(hosts, str):
        hosts = hosts.split(",")
    return {str(h).strip().lower().strip("[]") for h in hosts if str(h).strip()}


#: Not globally reachable (IANA special-purpose registry), though Python 3.11's ``is_global``
#: says they are: the IETF protocol assignments (192.0.0.192 is Oracle Cloud's legacy metadata).
NON_PUBLIC_NETWORKS = (ipaddress.ip_network("192.0.0.0/24"),)


def forbidden_reason(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a worker must not connect to ``ip``, or None if it is a public address. An IPv6 address
    carrying an IPv4 one (mapped, 6to4) is judged by the IPv4 address it leads to."""
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ip.ipv4_mapped or ip.sixtofour or ip
    if any(ip in network for network in NON_PUBLIC_NETWORKS):
        return "reserved or non-public"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata)"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved or non-public"
    return None


@dataclass(frozen=True)
class Target:
    """Where to send a request: ``url`` (possibly with the checked IP in place of the host), the
    ``host_header`` and TLS ``sni_hostname`` to send with it (None when not pinned)."""

    url: str
    host_header: str | None = None
    sni_hostname: str | None = None

    @property
    def extensions(self) -> dict:
        return {"sni_hostname": self.sni_hostname} if self.sni_hostname else {}

    @property
    def headers(self) -> dict:
        return {"Host": self.host_header} if self.host_header else {}


def check_url(url: str, *, resolve: bool = True) -> Target:
    """Refuse (UnsafeURL) a URL a worker must not fetch; return where to send the request."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL(f"{url!r}: only http and https URLs are allowed.")
    if parts.username or parts.password:
        raise UnsafeURL("Put credentials in an environment variable (api_key_env), not in the URL.")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeURL(f"{url!r} has no host.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeURL(f"{url!r} has an invalid port.") from None
    if host in allowed_hosts():
        return Target(url=url)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    elif not resolve:
        return Target(url=url)
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise UnresolvableHost(f"Cannot resolve {host!r}: {exc}") from exc
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
        if not addresses:
            raise UnresolvableHost(f"{host!r} resolves to no address.")
    for ip in addresses:
        reason = forbidden_reason(ip)
        if reason:
            article = "an" if reason[0] in "aeiou" else "a"
            where = f"{host} is" if literal is not None else f"{host} resolves to {ip}, which is"
            raise UnsafeURL(
                f"{where} {article} {reason} address, which workers may not reach. "
                f"An administrator can allow the host in {SETTING}."
            )
    if literal is not None:
        return Target(url=url)
    pinned = addresses[0]
    ip_text = f"[{pinned}]" if pinned.version == 6 else str(pinned)
    netloc = f"{ip_text}:{parts.port}" if parts.port else ip_text
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return Target(
        url=urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)),
        host_header=host_header,
        sni_hostname=host if parts.scheme == "https" else None,
    )
