"""``api_token list`` as a researcher reads it in a terminal.

Before: a token past its expiry was listed as ``live`` (only revocation was looked at), though it no
longer authenticates and the tokens page calls it ``expired``; the expiry was not shown at all; and
``list --user nobody`` printed nothing and exited 0, as for a user who has no tokens.
Now: an expired token is listed as ``expired``, a live one with an expiry as ``live until
YYYY-MM-DD``; an unknown ``--user`` is a one-line CommandError naming ``--user``, as ``create`` does.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from annotate.models import ApiToken


def _listing(*args: str) -> dict[str, list[str]]:
    out = io.StringIO()
    call_command("api_token", "list", *args, stdout=out)
    return {line.split("\t")[2]: line.split("\t") for line in out.getvalue().splitlines()}


def _create(user, name: str, *extra: str) -> ApiToken:
    call_command(
        "api_token", "create", "--user", user.username, "--name", name, *extra,
        stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    return ApiToken.objects.get(name=name)


def test_an_expired_token_is_listed_as_expired_and_an_expiry_is_shown(make_user):
    user = make_user()
    _create(user, "forever")
    soon = _create(user, "soon", "--days", "3")
    old = _create(user, "old", "--days", "1")
    ApiToken.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(days=2))
    rows = _listing()
    assert rows["forever"][4] == "live"
    assert rows["soon"][4] == f"live until {timezone.localtime(soon.expires_at):%Y-%m-%d}"
    assert rows["old"][4] == "expired"


def test_a_revoked_token_that_has_also_expired_is_listed_as_revoked(make_user):
    user = make_user()
    token = _create(user, "gone", "--days", "1")
    call_command("api_token", "revoke", "--id", str(token.pk), stdout=io.StringIO())
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(days=2))
    assert _listing()["gone"][4] == "revoked"


def test_list_for_an_unknown_user_is_refused_naming_the_option(make_user):
    _create(make_user(), "laptop")
    with pytest.raises(CommandError, match=r"^--user: no user 'nobody'\.$"):
        call_command("api_token", "list", "--user", "nobody", stdout=io.StringIO())


def test_list_for_a_user_without_tokens_prints_nothing(make_user):
    _create(make_user(), "laptop")
    quiet = make_user()
    assert _listing("--user", quiet.username) == {}
