"""The token cache cannot be refilled with a token as it was before its revocation: a request that
read the token from the database just before a revocation committed, and writes the cache just
after it, must not keep the revoked token usable for the cache's lifetime."""

from __future__ import annotations

import pytest

import core.access
from annotate.models import ApiToken
from annotate.services import tokens
from annotate.services.tokens import token_authenticate, token_create, token_revoke

pytestmark = pytest.mark.usefixtures("token_cache")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", ["revoke", "deactivate", "delete"])
def test_a_stale_read_cannot_refill_the_cache_after_a_change(make_user, monkeypatch, change):
    user = make_user()
    _token, secret = token_create(user=user, name="laptop")

    real_scope = core.access.token_scope
    raced = []

    def scope_then_change(stale):
        # between this request's database read and its cache write, another request commits
        if not raced:
            raced.append(True)
            fresh = ApiToken.objects.get(pk=stale.pk)
            if change == "revoke":
                token_revoke(token=fresh, actor=user)
            elif change == "deactivate":
                user.is_active = False
                user.save()
            else:
                fresh.delete()
        return real_scope(stale)

    monkeypatch.setattr(core.access, "token_scope", scope_then_change)
    assert tokens._token_lookup(tokens.token_digest(secret)) is not None  # the stale read
    assert raced
    assert token_authenticate(secret=secret) is None


@pytest.mark.django_db(transaction=True)
def test_a_changed_token_is_served_as_changed(make_user):
    user = make_user()
    token, secret = token_create(user=user, name="laptop")
    assert token_authenticate(secret=secret) is not None
    ApiToken.objects.filter(pk=token.pk).update(name="renamed")  # no signal: the cache still serves
    token.name = "renamed"
    token.save()  # a signal: the entry is dropped
    assert token_authenticate(secret=secret).name == "renamed"
