"""API tokens for researchers: created once (the secret is shown once), revoked, checked.

Only ``sha256(secret)`` is stored. A token acts for its user; with projects set it reaches only
those projects (and still only those the user is a member of).

Authentication is cached: the token found for a digest (with its user and project scope) is kept
in the Django cache, keyed by the digest, for ``API_TOKEN_CACHE_SECONDS`` (0: no cache; the
default is on only when the cache is shared by every process, i.e. Redis). Anything that changes
what a token may do drops the entry at once: revoking (``token_revoke``), saving or deleting the
token, changing its projects, saving or deleting its user (``annotate.signals``). Dropping writes
a tombstone for the cache's lifetime, and entries are only ever added (never overwritten), so a
request that read the token just before the change cannot put the old token back. Expiry is
checked on every request against the cached ``expires_at``; ``last_used_at`` is written at most
once a minute per token (the time of the last write is cached beside the token).
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotate.errors import InvalidInput, NotFound
from annotate.models import ApiToken, Project
from core.audit import audit_record

TOKEN_PREFIX = "ph_"
LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _cache_key(digest: str) -> str:
    return f"prefhub:apitoken:{digest}"


# What a dropped entry holds: "read the database, and cache nothing" until it expires.
_FORGOTTEN = "forgotten"


def token_cache_forget(*digests: str) -> None:
    """Drop the cached lookups of these token digests, now and again when the transaction commits:
    each entry becomes a tombstone for ``API_TOKEN_CACHE_SECONDS``. A request that read the token
    from the database before the change committed fills the cache with ``add``, which cannot
    replace the tombstone, so its stale copy never serves a later request."""
    ttl = getattr(settings, "API_TOKEN_CACHE_SECONDS", 0)
    keys = [_cache_key(d) for d in digests if d]
    if not keys or not ttl:
        return

    def bury() -> None:
        cache.set_many(dict.fromkeys(keys, _FORGOTTEN), timeout=ttl)

    bury()
    transaction.on_commit(bury)


#: The longest expiry a token may be given, in days (the token page and ``api_token create --days``).
MAX_EXPIRY_DAYS = 3650


@transaction.atomic
def token_create(
    *,
    user: AbstractBaseUser,
    name: str,
    projects: list[Project] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; returns it with the plaintext secret, which is not stored anywhere.

    ``projects`` narrows it; each must be one the user can see (an active member; superusers: any),
    as the tokens page offers: a token narrowed to a project its user is not in would reach nothing
    there, so it is refused (``InvalidInput`` on ``projects``)."""
    if not user.is_active:  # token_authenticate answers its tokens with None
        raise InvalidInput(f"{user} is deactivated: a token of theirs would not authenticate.", field="user")
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("A token needs a name of at most 100 characters.", field="name")
    if any(unicodedata.category(ch) == "Cc" for ch in name):  # tabs, newlines: it is listed one a line
        raise InvalidInput(
            "A token name is one line of text: no tab, newline or other control character.", field="name"
        )
    if projects:
        from core.access import visible_projects  # core.access imports DRF, whose settings import this

        visible = set(
            visible_projects(user).filter(pk__in=[p.pk for p in projects]).values_list("pk", flat=True)
        )
        outside = [p.slug for p in projects if p.pk not in visible]
        if outside:
            raise InvalidInput(
                f"{user} is not an active member of {', '.join(outside)}; a token narrowed to a project "
                "its user is not in reaches nothing there.",
                field="projects",
            )
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("The expiry must be in the future.", field="expires_at")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=secret[:12], digest=token_digest(secret), expires_at=expires_at
    )
    if projects:
        token.projects.set(projects)
    audit_record(
        actor=user, project=None, action="api_token.create", target=token,
        details={"name": name, "projects": [p.slug for p in projects or []]},
    )  # fmt: skip
    return token, secret


@transaction.atomic
def token_revoke(*, token: ApiToken, actor: AbstractBaseUser | None = None) -> ApiToken:
    """Revoke a token (idempotent). Locks the token's row, so two revocations at once revoke and
    audit once. Returns the token as stored; ``token`` gets its ``revoked_at`` too."""
    locked = ApiToken.objects.select_for_update().get(pk=token.pk)
    if locked.revoked_at is None:
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        token_cache_forget(locked.digest)
        audit_record(actor=actor, project=None, action="api_token.revoke", target=locked)
    token.revoked_at = locked.revoked_at
    return locked


def token_revoke_by_id(*, user: AbstractBaseUser, token_id: int) -> ApiToken:
    token = ApiToken.objects.filter(pk=token_id, user=user).first()
    if token is None:
        raise NotFound("No such token.")
    return token_revoke(token=token, actor=user)


def _token_lookup(digest: str) -> ApiToken | None:
    """The token for a digest with its user and project scope, from the cache or the database."""
    ttl = getattr(settings, "API_TOKEN_CACHE_SECONDS", 0)
    key = _cache_key(digest)
    if ttl:
        token = cache.get(key)
        if token == _FORGOTTEN:
            ttl = 0  # changed a moment ago: read the database until the tombstone expires
        elif token is not None:
            return token
    # the password hash has no business in the cache
    token = ApiToken.objects.select_related("user").defer("user__password").filter(digest=digest).first()
    if token is None or not ttl:
        return token
    # the scope travels in the cache with the token, so access checks need no query for it
    from core.access import token_scope  # core.access imports DRF, whose settings import this module

    token_scope(token)
    if token.expires_at is not None:
        ttl = min(ttl, max(1, int((token.expires_at - timezone.now()).total_seconds()) + 1))
    cache.add(key, token, timeout=ttl)  # never over a tombstone (see token_cache_forget)
    return token


def token_authenticate(*, secret: str, now: datetime | None = None) -> ApiToken | None:
    """The live token for this secret (not revoked, not expired, active user), or None.

    Cached by digest (see the module docstring; revocation drops the entry at once). Records
    ``last_used_at`` at most once a minute per token (no write on most requests)."""
    if not secret or not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    now = now or timezone.now()
    token = _token_lookup(token_digest(secret))
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    stale = now - LAST_USED_RESOLUTION
    if token.last_used_at is None or token.last_used_at < stale:
        # A cached token's last_used_at is as old as the cache entry: the time of the last write
        # is kept beside it (keyed by digest), so a warm token writes at most once a minute too.
        used_key = f"prefhub:apitoken-used:{token.digest}"
        written = cache.get(used_key) if getattr(settings, "API_TOKEN_CACHE_SECONDS", 0) else None
        if written is None or written < stale:
            ApiToken.objects.filter(pk=token.pk).filter(
                Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale)
            ).update(last_used_at=now)
            if getattr(settings, "API_TOKEN_CACHE_SECONDS", 0):
                cache.set(used_key, now, timeout=2 * int(LAST_USED_RESOLUTION.total_seconds()))
        token.last_used_at = now
    return token
