"""Cached API token authentication (issue 16): no per-request token query, yet revocation,
expiry, deactivation and scope changes take effect on the very next request."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from annotate.models import ApiToken
from annotate.services.tokens import token_authenticate, token_create, token_revoke

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("token_cache")]


@pytest.fixture
def world(make_project, labeler_in):
    project = make_project()
    return {"project": project, "users": {"researcher": labeler_in(project, role="researcher")}}


def _token_queries(ctx: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if "annotate_apitoken" in q["sql"]]


def _client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_a_warm_token_costs_no_query(world):
    _, secret = token_create(user=world["users"]["researcher"], name="laptop")
    client = _client(secret)
    assert client.get("/api/v1/projects/").status_code == 200  # fills the cache, writes last_used_at
    for _ in range(3):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/api/v1/projects/").status_code == 200
        assert _token_queries(ctx) == [], "the token (and its scope) came from the cache"


def test_revoking_refuses_the_very_next_request(world):
    user = world["users"]["researcher"]
    token, secret = token_create(user=user, name="laptop")
    client = _client(secret)
    assert client.get("/api/v1/projects/").status_code == 200
    assert client.get("/api/v1/projects/").status_code == 200  # served from the cache
    token_revoke(token=token, actor=user)
    resp = client.get("/api/v1/projects/")
    assert resp.status_code == 401 and "revoked" in resp.json()["detail"]


def test_revoking_through_the_tokens_api_and_the_admin_save_is_immediate(world):
    user = world["users"]["researcher"]
    token, secret = token_create(user=user, name="laptop")
    client = _client(secret)
    assert client.get("/api/v1/projects/").status_code == 200
    token.revoked_at = timezone.now()  # as the admin would: a plain save, no service
    token.save()
    assert client.get("/api/v1/projects/").status_code == 401
    other, secret2 = token_create(user=user, name="second")
    client2 = _client(secret2)
    assert client2.get("/api/v1/projects/").status_code == 200
    other.delete()
    assert client2.get("/api/v1/projects/").status_code == 401


def test_expiry_is_honoured_for_a_cached_token(make_user):
    now = timezone.now()
    _, secret = token_create(user=make_user(), name="short", expires_at=now + timedelta(minutes=5))
    assert token_authenticate(secret=secret, now=now) is not None  # cached now
    assert token_authenticate(secret=secret, now=now + timedelta(minutes=4)) is not None
    assert token_authenticate(secret=secret, now=now + timedelta(minutes=5, seconds=1)) is None


def test_deactivating_the_user_refuses_the_next_request(world):
    user = world["users"]["researcher"]
    _, secret = token_create(user=user, name="laptop")
    client = _client(secret)
    assert client.get("/api/v1/projects/").status_code == 200
    user.is_active = False
    user.save()
    assert client.get("/api/v1/projects/").status_code == 401


def test_narrowing_a_tokens_projects_takes_effect_at_once(world, make_project):
    user = world["users"]["researcher"]
    token, secret = token_create(user=user, name="laptop")
    client = _client(secret)
    slug = world["project"].slug
    assert client.get(f"/api/v1/projects/{slug}/").status_code == 200
    token.projects.set([make_project()])
    assert client.get(f"/api/v1/projects/{slug}/").status_code == 404


def test_last_used_is_written_at_most_once_a_minute_with_a_warm_cache(make_user):
    token, secret = token_create(user=make_user(), name="t")
    now = timezone.now()
    with CaptureQueriesContext(connection) as ctx:
        for i in range(5):
            token_authenticate(secret=secret, now=now + timedelta(seconds=i))
    updates = [s for s in _token_queries(ctx) if s.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1
    token.refresh_from_db()
    assert token.last_used_at == now
    token_authenticate(secret=secret, now=now + timedelta(seconds=61))
    token.refresh_from_db()
    assert token.last_used_at == now + timedelta(seconds=61)
    assert ApiToken.objects.filter(pk=token.pk, last_used_at__isnull=False).exists()
