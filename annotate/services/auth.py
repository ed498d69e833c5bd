"""Sign-in throttling: failed attempts lock a (account, client address) pair, and an address.

Compare django-axes: ``AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]``,
``AXES_FAILURE_LIMIT`` (``LOGIN_MAX_FAILURES`` per account and address, ``LOGIN_MAX_FAILURES_PER_IP``
per address), ``AXES_COOLOFF_TIME`` as a callable that backs off (``LOGIN_LOCKOUT_SECONDS``, doubled
on each consecutive lockout of the same key up to ``LOGIN_LOCKOUT_MAX_SECONDS``),
``AXES_RESET_ON_SUCCESS``, and the client address from a trusted proxy's header
(``PREFHUB_TRUSTED_PROXIES``, see ``annotate.auth_backends.client_ip``).

Only failures count: there is no per-account lock, so a guesser locks only its own address (and the
pair it guessed at), never a labeler signing in from elsewhere, and a good sign-in gives its
reservation back.

Contract: ``login_attempt_reserve`` atomically counts the attempt *before* the password is checked
(one ``UPDATE ... SET failures = failures + 1`` per key), so N concurrent guesses get at most
``LOGIN_MAX_FAILURES`` password checks between them; ``login_succeeded`` then returns it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotate.models import LoginThrottle


@dataclass(frozen=True)
class ThrottleRule:
    key: str
    limit: int


def _window() -> timedelta:
    return timedelta(seconds=getattr(settings, "LOGIN_LOCKOUT_SECONDS", 900))


def _cooloff(lockouts: int) -> timedelta:
    """How long the ``lockouts``-th consecutive lockout (0-based) of a key lasts: doubling, capped."""
    base = getattr(settings, "LOGIN_LOCKOUT_SECONDS", 900)
    cap = getattr(settings, "LOGIN_LOCKOUT_MAX_SECONDS", 24 * 3600)
    return timedelta(seconds=min(cap, base * 2 ** min(lockouts, 32)))


def throttle_rules(*, username: str, ip: str | None) -> list[ThrottleRule]:
    name = (username or "").strip().lower()[:150]
    rules = [ThrottleRule(f"user-ip:{name}|{ip or '-'}", getattr(settings, "LOGIN_MAX_FAILURES", 5))]
    if ip:
        rules.append(ThrottleRule(f"ip:{ip}", getattr(settings, "LOGIN_MAX_FAILURES_PER_IP", 50)))
    return rules


def login_locked_until(*, rules: list[ThrottleRule], now: datetime | None = None) -> datetime | None:
    """When the lock on any of these keys ends, or None if none is locked."""
    now = now or timezone.now()
    row = (
        LoginThrottle.objects.filter(key__in=[r.key for r in rules], locked_until__gt=now)
        .order_by("-locked_until")
        .first()
    )
    return row.locked_until if row else None


def _reserve_one(rule: ThrottleRule, now: datetime) -> bool:
    window = _window()
    with transaction.atomic():
        # a quiet window forgets the failures and the backoff; an ended lock only the failures
        LoginThrottle.objects.filter(
            key=rule.key, window_started_at__lte=now - window, locked_until__isnull=True
        ).update(failures=0, lockouts=0, window_started_at=now)
        LoginThrottle.objects.filter(key=rule.key, locked_until__lte=now).update(
            failures=0, window_started_at=now, locked_until=None
        )
        updated = LoginThrottle.objects.filter(key=rule.key).update(failures=F("failures") + 1)
        if not updated:
            try:
                with transaction.atomic():
                    LoginThrottle.objects.create(key=rule.key, failures=1, window_started_at=now)
            except IntegrityError:  # a concurrent first attempt created it
                LoginThrottle.objects.filter(key=rule.key).update(failures=F("failures") + 1)
        failures, lockouts = (
            LoginThrottle.objects.filter(key=rule.key).values_list("failures", "lockouts").get()
        )
        if failures > rule.limit:
            LoginThrottle.objects.filter(key=rule.key, locked_until__isnull=True).update(
                locked_until=now + _cooloff(lockouts), lockouts=F("lockouts") + 1
            )
            return False
    return True


def login_attempt_reserve(*, rules: list[ThrottleRule], now: datetime | None = None) -> bool:
    """Count one attempt against every key; False (do not check the password) if any is over its limit."""
    now = now or timezone.now()
    if login_locked_until(rules=rules, now=now):
        return False
    return all([_reserve_one(rule, now) for rule in rules])


def login_succeeded(*, rules: list[ThrottleRule]) -> None:
    """A good sign-in: forget the (account, address) failures and give back the address's reservation."""
    user_rule, *address_rules = rules
    LoginThrottle.objects.filter(key=user_rule.key).delete()
    for rule in address_rules:
        LoginThrottle.objects.filter(key=rule.key, failures__gt=0, locked_until__isnull=True).update(
            failures=F("failures") - 1
        )
