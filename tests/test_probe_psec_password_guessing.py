"""Penetration probe (psec): password guessing. Sign-in locks a (username, address) pair after
``LOGIN_MAX_FAILURES`` wrong passwords; the password change page checks the old password too, and
must count and lock the same way, or a borrowed session guesses the password there unthrottled."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-123"


def _change(client: Client, old: str):
    return client.post(
        "/accounts/password/change/",
        {"old_password": old, "new_password1": "A-new-pass-9876", "new_password2": "A-new-pass-9876"},
    )


def test_old_password_guesses_lock_like_sign_in(make_user, settings):
    settings.LOGIN_MAX_FAILURES = 3
    user = make_user(password=PASSWORD)
    client = Client()
    client.force_login(user)
    for n in range(5):
        assert _change(client, f"guess-{n}").status_code == 200  # the form again, with an error
    resp = _change(client, PASSWORD)  # the right one, after too many wrong ones
    assert resp.status_code == 200, resp.status_code
    user.refresh_from_db()
    assert user.check_password(PASSWORD), "the password was changed past the lock"


def test_the_right_old_password_still_changes_it(make_user):
    """The control: one wrong guess, then the right password, changes it."""
    user = make_user(password=PASSWORD)
    client = Client()
    client.force_login(user)
    assert _change(client, "wrong").status_code == 200
    assert _change(client, PASSWORD).status_code == 302
    user.refresh_from_db()
    assert user.check_password("A-new-pass-9876")
