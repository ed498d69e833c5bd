"""Authentication backend that refuses to check passwords for locked-out (account, address) pairs
or addresses, and the client address it keys them on."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from annotate.services.auth import login_attempt_reserve, login_succeeded, throttle_rules

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in proxies if p.strip())


def _address(value: str):
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


def client_ip(request) -> str | None:
    """The client's address: ``REMOTE_ADDR``, unless that is one of ``PREFHUB_TRUSTED_PROXIES``
    (addresses or networks); then the right-most address in ``PREFHUB_CLIENT_IP_HEADER``
    (``X-Forwarded-For``) that is not a trusted proxy. Entries left of it are the client's own
    claims and are never used, so a client cannot choose the address it is throttled under."""
    if request is None:
        return None
    remote = request.META.get("REMOTE_ADDR")
    trusted = _networks(tuple(getattr(settings, "PREFHUB_TRUSTED_PROXIES", ()) or ()))
    remote_ip = _address(remote or "")
    if not trusted or remote_ip is None or not any(remote_ip in net for net in trusted):
        return remote
    header = request.META.get(getattr(settings, "PREFHUB_CLIENT_IP_HEADER", "HTTP_X_FORWARDED_FOR"), "")
    for hop in reversed([h for h in header.split(",") if h.strip()]):
        ip = _address(hop)
        if ip is None:
            return remote  # a malformed chain: do not guess
        if not any(ip in net for net in trusted):
            return str(ip)
    return remote


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field_name(), "")
        rules = throttle_rules(username=username or "", ip=client_ip(request))
        if not login_attempt_reserve(rules=rules):
            raise PermissionDenied("Too many failed sign-in attempts.")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            login_succeeded(rules=rules)
        return user

    @staticmethod
    def _username_field_name() -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD
