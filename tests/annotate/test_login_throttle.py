"""Sign-in brute force is throttled, sequentially and under concurrent attempts."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import authenticate
from django.db import connection, connections
from django.test import Client, RequestFactory, override_settings

from annotate.models import LoginThrottle

pytestmark = pytest.mark.django_db


@override_settings(LOGIN_MAX_FAILURES=3, LOGIN_LOCKOUT_SECONDS=600)
def test_account_locks_after_failures_even_with_the_right_password(make_user):
    make_user("victim", password="correct-horse-battery")
    client = Client()
    for _ in range(3):
        resp = client.post("/accounts/login/", {"username": "victim", "password": "wrong"})
        assert resp.status_code == 200 and "_auth_user_id" not in client.session
    resp = client.post("/accounts/login/", {"username": "victim", "password": "wrong"})
    assert "Too many failed sign-in attempts" in resp.content.decode()
    resp = client.post("/accounts/login/", {"username": "victim", "password": "correct-horse-battery"})
    assert "_auth_user_id" not in client.session
    assert "Too many failed sign-in attempts" in resp.content.decode()


@override_settings(LOGIN_MAX_FAILURES=3)
def test_success_resets_the_counter(make_user):
    make_user("bob", password="correct-horse-battery")
    client = Client()
    for _ in range(2):
        client.post("/accounts/login/", {"username": "bob", "password": "wrong"})
    resp = client.post("/accounts/login/", {"username": "bob", "password": "correct-horse-battery"})
    assert resp.status_code == 302
    assert not LoginThrottle.objects.filter(key="user:bob").exists()


@pytest.mark.django_db(transaction=True)
@override_settings(LOGIN_MAX_FAILURES=5)
def test_concurrent_guesses_get_at_most_the_limit_of_password_checks(make_user, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL for truly concurrent transactions")
    make_user("target", password="correct-horse-battery")
    from django.contrib.auth.backends import ModelBackend

    checks = []
    original = ModelBackend.authenticate

    def counting(self, request, username=None, password=None, **kwargs):
        checks.append(password)
        return original(self, request, username=username, password=password, **kwargs)

    monkeypatch.setattr(ModelBackend, "authenticate", counting)
    barrier = threading.Barrier(20)
    rf = RequestFactory()

    def guess(i):
        try:
            barrier.wait()
            return authenticate(rf.post("/accounts/login/"), username="target", password=f"guess-{i}")
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(guess, range(20)))
    assert all(r is None for r in results)
    assert len(checks) <= 5
    assert LoginThrottle.objects.get(key="user:target").locked_until is not None
