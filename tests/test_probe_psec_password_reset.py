"""Penetration probe (psec): the password reset page is open to anyone and sends an email per
request; without a limit one script floods an account's mailbox (and the site's mail quota)."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client

pytestmark = pytest.mark.django_db


def test_reset_emails_to_one_address_are_limited(make_user):
    cache.clear()
    make_user(email="victim@example.com")
    client = Client()
    codes = [
        client.post("/accounts/password/reset/", {"email": "victim@example.com"}).status_code
        for _ in range(30)
    ]
    assert 429 in codes, codes
    assert len(mail.outbox) < 30
    cache.clear()


def test_a_reset_email_is_sent(make_user):
    """The control: one request sends one email."""
    cache.clear()
    make_user(email="someone@example.com")
    resp = Client().post("/accounts/password/reset/", {"email": "someone@example.com"})
    assert resp.status_code == 302
    assert len(mail.outbox) == 1
    cache.clear()


def test_a_made_up_forwarded_for_does_not_reset_the_limit(make_user):
    """The limit counts the address sign-in throttling uses: a client that names another address
    in ``X-Forwarded-For`` on each request (DRF's ``get_ident`` trusts it) is still one client."""
    cache.clear()
    make_user(email="victim2@example.com")
    client = Client()
    codes = [
        client.post(
            "/accounts/password/reset/", {"email": "victim2@example.com"}, HTTP_X_FORWARDED_FOR=f"10.9.8.{n}"
        ).status_code
        for n in range(10)
    ]
    assert 429 in codes, codes
    cache.clear()
