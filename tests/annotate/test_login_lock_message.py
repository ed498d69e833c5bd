"""The sign-in lock reads the same whether this attempt found it or made it: how long is left.
Before, an attempt whose own failure started the lock said "locked for a while"."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annotate import auth_forms

pytestmark = pytest.mark.django_db


def test_an_attempt_whose_failure_starts_the_lock_says_how_long(make_user, monkeypatch):
    make_user("victim", password="correct-horse-battery")
    answers = iter([None, timezone.now() + timedelta(minutes=15)])  # before, then after this failure
    monkeypatch.setattr(auth_forms, "login_locked_until", lambda rules: next(answers))
    text = Client().post("/accounts/login/", {"username": "victim", "password": "wrong"}).content.decode()
    assert "Too many failed sign-in attempts. Try again in 15 minutes." in text
    assert "for a while" not in text
