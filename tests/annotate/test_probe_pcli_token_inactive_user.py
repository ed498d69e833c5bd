"""``api_token create --user NAME`` for a deactivated user.

Before: the token was made and its secret printed ("shown once"), but a token of an inactive user
never authenticates (``token_authenticate`` requires an active user), so the researcher was handed
a secret that every request would answer with 401.
Now: ``token_create`` refuses it (``--user: ... deactivated ...`` on the command line) and makes no
token; an active user still gets a working token.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.models import ApiToken
from annotate.services.tokens import token_authenticate


def test_a_deactivated_user_gets_no_token(make_user):
    user = make_user()
    user.is_active = False
    user.save(update_fields=["is_active"])
    out = io.StringIO()
    with pytest.raises(CommandError, match=rf"^--user: {user.username} is deactivated"):
        call_command("api_token", "create", "--user", user.username, "--name", "x", stdout=out)
    assert out.getvalue() == ""
    assert not ApiToken.objects.exists()


def test_an_active_user_gets_a_working_token(make_user):
    user = make_user()
    out = io.StringIO()
    call_command(
        "api_token", "create", "--user", user.username, "--name", "x", stdout=out, stderr=io.StringIO()
    )
    assert token_authenticate(secret=out.getvalue().strip()) is not None
