"""Sign-in brute force is throttled, sequentially and under concurrent attempts."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.db import connection, connections
from django.test import Client, RequestFactory, override_settings
from django.utils import timezone

from annotate.auth_backends import client_ip
from annotate.models import LoginThrottle
from annotate.services.auth import login_attempt_reserve, login_locked_until, throttle_rules

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
    assert not LoginThrottle.objects.filter(key="user-ip:bob|127.0.0.1").exists()


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
    assert LoginThrottle.objects.get(key="user-ip:target|127.0.0.1").locked_until is not None


def _sign_in(client: Client, username: str, password: str) -> bool:
    client.post("/accounts/login/", {"username": username, "password": password})
    ok = "_auth_user_id" in client.session
    client.logout()
    return ok


@override_settings(LOGIN_MAX_FAILURES=3, LOGIN_MAX_FAILURES_PER_IP=5)
def test_successful_sign_ins_never_count_towards_a_lock(make_user):
    make_user("labeler", password="correct-horse-battery")
    client = Client(REMOTE_ADDR="10.0.0.5")
    for _ in range(12):
        assert _sign_in(client, "labeler", "correct-horse-battery")
    assert not LoginThrottle.objects.filter(failures__gt=0).exists()


@override_settings(LOGIN_MAX_FAILURES=3, LOGIN_LOCKOUT_SECONDS=600)
def test_an_attacker_cannot_lock_a_labeler_out_from_another_address(make_user):
    make_user("labeler", password="correct-horse-battery")
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(6):
        assert not _sign_in(attacker, "labeler", "wrong")
    assert not _sign_in(attacker, "labeler", "correct-horse-battery")  # locked at the attacker's address
    assert _sign_in(Client(REMOTE_ADDR="198.51.100.7"), "labeler", "correct-horse-battery")


@override_settings(LOGIN_MAX_FAILURES=3, LOGIN_LOCKOUT_SECONDS=600, PREFHUB_TRUSTED_PROXIES=["10.9.0.0/16"])
def test_behind_a_trusted_proxy_the_forwarded_client_address_is_the_key(make_user):
    make_user("labeler", password="correct-horse-battery")
    via_proxy = {"REMOTE_ADDR": "10.9.0.1"}
    attacker = Client(**via_proxy, HTTP_X_FORWARDED_FOR="203.0.113.9")
    for _ in range(6):
        assert not _sign_in(attacker, "labeler", "wrong")
    assert not _sign_in(attacker, "labeler", "correct-horse-battery")
    # every user shares the proxy's address, yet the labeler (another client) is not locked out
    assert _sign_in(
        Client(**via_proxy, HTTP_X_FORWARDED_FOR="198.51.100.7"), "labeler", "correct-horse-battery"
    )


@override_settings(PREFHUB_TRUSTED_PROXIES=["10.9.0.0/16", "10.8.0.1"])
def test_client_ip_trusts_forwarded_headers_only_from_trusted_proxies():
    rf = RequestFactory()
    assert (
        client_ip(rf.get("/", REMOTE_ADDR="10.9.3.4", HTTP_X_FORWARDED_FOR="198.51.100.7")) == "198.51.100.7"
    )
    # a spoofed left-most entry is ignored: the right-most untrusted hop is the client
    forwarded = "1.2.3.4, 198.51.100.7, 10.8.0.1"
    assert client_ip(rf.get("/", REMOTE_ADDR="10.9.3.4", HTTP_X_FORWARDED_FOR=forwarded)) == "198.51.100.7"
    # not from a trusted proxy: the header is the client's own claim, ignored
    assert (
        client_ip(rf.get("/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="198.51.100.7"))
        == "203.0.113.9"
    )
    assert client_ip(rf.get("/", REMOTE_ADDR="10.9.3.4", HTTP_X_FORWARDED_FOR="garbage")) == "10.9.3.4"
    assert client_ip(rf.get("/", REMOTE_ADDR="10.9.3.4")) == "10.9.3.4"
    with override_settings(PREFHUB_TRUSTED_PROXIES=[]):
        assert client_ip(rf.get("/", REMOTE_ADDR="10.9.3.4", HTTP_X_FORWARDED_FOR="1.2.3.4")) == "10.9.3.4"


@override_settings(LOGIN_MAX_FAILURES=2, LOGIN_LOCKOUT_SECONDS=60, LOGIN_LOCKOUT_MAX_SECONDS=200)
def test_repeated_lockouts_back_off_exponentially_up_to_a_cap():
    rules = throttle_rules(username="victim", ip="203.0.113.9")
    now = timezone.now()
    lengths = []
    for _ in range(4):
        assert login_attempt_reserve(rules=rules, now=now)
        assert login_attempt_reserve(rules=rules, now=now)
        assert not login_attempt_reserve(rules=rules, now=now)  # the third failure locks
        until = login_locked_until(rules=rules, now=now)
        lengths.append((until - now).total_seconds())
        now = until + timedelta(seconds=1)
    assert lengths == [60, 120, 200, 200]
