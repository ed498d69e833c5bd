"""Sign-in throttling: lock an account (and an address) out after too many failed attempts.

Contract: ``login_attempt_reserve`` atomically counts the attempt *before* the password is checked
(one ``UPDATE ... SET failures = failures + 1 RETURNING`` per key), so N concurrent guesses get at
most ``LOGIN_MAX_FAILURES`` password checks between them. A successful sign-in clears the user key.
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


def throttle_rules(*, username: str, ip: str | None) -> list[ThrottleRule]:
    rules = [
        ThrottleRule(
            f"user:{(username or '').strip().lower()[:150]}", getattr(settings, "LOGIN_MAX_FAILURES", 5)
        )
    ]
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
        # reset an old window first, then count this attempt atomically
        LoginThrottle.objects.filter(
            key=rule.key, window_started_at__lte=now - window, locked_until__isnull=True
        ).update(failures=0, window_started_at=now)
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
        failures = LoginThrottle.objects.filter(key=rule.key).values_list("failures", flat=True).get()
        if failures > rule.limit:
            LoginThrottle.objects.filter(key=rule.key, locked_until__isnull=True).update(
                locked_until=now + window
            )
            return False
    return True


def login_attempt_reserve(*, rules: list[ThrottleRule], now: datetime | None = None) -> bool:
    """Count one attempt against every key; False (do not check the password) if any is over its limit."""
    now = now or timezone.now()
    if login_locked_until(rules=rules, now=now):
        return False
    return all([_reserve_one(rule, now) for rule in rules])


def login_succeeded(*, username: str) -> None:
    LoginThrottle.objects.filter(key=throttle_rules(username=username, ip=None)[0].key).delete()
