"""``api_token create --name`` with a tab, a newline or another control character.

Before: such a name was stored as given, and ``api_token list`` (one tab-separated line a token)
printed it across two lines or with an extra column, so the listing no longer lined up for the
reader or for ``cut``/``awk``.
Now: a token name is one line of text: a name holding a control character is refused by
``token_create`` (``--name: ...`` on the command line, the same for the page and the API) and no
token is made. Leading/trailing whitespace is still trimmed as before.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.models import ApiToken


@pytest.mark.parametrize("name", ["a\tb", "a\nb", "a\rb", "a\x1bb", "a\x7fb"])
def test_a_name_with_a_control_character_is_refused(make_user, name):
    user = make_user()
    with pytest.raises(CommandError, match=r"^--name: .*control character"):
        call_command("api_token", "create", "--user", user.username, "--name", name, stdout=io.StringIO())
    assert not ApiToken.objects.exists()


def test_an_ordinary_name_is_kept_trimmed(make_user):
    user = make_user()
    call_command(
        "api_token", "create", "--user", user.username, "--name", "  Laptop - ünïcode  ",
        stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    assert ApiToken.objects.get().name == "Laptop - ünïcode"
