"""API tokens for researchers: created once (the secret is shown once), revoked, checked.

Only ``sha256(secret)`` is stored. A token acts for its user; with projects set it reaches only
those projects (and still only those the user is a member of).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
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


@transaction.atomic
def token_create(
    *,
    user: AbstractBaseUser,
    name: str,
    projects: list[Project] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; returns it with the plaintext secret, which is not stored anywhere."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("A token needs a name of at most 100 characters.", field="name")
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
    """Revoke a token (idempotent)."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(actor=actor, project=None, action="api_token.revoke", target=token)
    return token


def token_revoke_by_id(*, user: AbstractBaseUser, token_id: int) -> ApiToken:
    token = ApiToken.objects.filter(pk=token_id, user=user).first()
    if token is None:
        raise NotFound("No such token.")
    return token_revoke(token=token, actor=user)


def token_authenticate(*, secret: str, now: datetime | None = None) -> ApiToken | None:
    """The live token for this secret (not revoked, not expired, active user), or None. Records
    ``last_used_at`` at most once a minute (one conditional UPDATE, no write on most requests)."""
    if not secret or not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    now = now or timezone.now()
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=token_digest(secret), revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        token.last_used_at = now
    return token
