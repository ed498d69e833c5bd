"""Penetration sweeps (psec): every route x principals the permission matrix does not cover."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from annotate.models import Membership
from annotate.services.tokens import token_create
from tests import test_permission_matrix as matrix
from tests.test_permission_matrix import METHODS, _fill, _request, _routes

pytestmark = pytest.mark.django_db

world = matrix.world  # the permission matrix's fixture: its projects, principals and ids


def _deactivated(world):
    insider = world["insider"]
    Membership.objects.filter(project=world["target"], user=insider).update(is_active=False)
    return insider


@pytest.mark.parametrize("method", METHODS)
def test_a_deactivated_member_reaches_nothing(world, method):
    insider = _deactivated(world)
    client = APIClient()
    client.force_login(insider)
    failures = []
    for route in _routes():
        resp = _request(client, method, _fill(route, world["insider_values"]), {"choice": "left"})
        if resp.status_code not in (403, 404, 405):
            failures.append(f"{method} {route}: {resp.status_code}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("method", METHODS)
def test_a_deactivated_members_token_reaches_nothing(world, method):
    insider = _deactivated(world)
    _, secret = token_create(user=insider, name="all")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    failures = []
    for route in _routes():
        if not route.startswith("api/"):
            continue
        resp = _request(client, method, _fill(route, world["insider_values"]), {"choice": "left"})
        if resp.status_code not in (401, 403, 404, 405):
            failures.append(f"{method} {route}: {resp.status_code}")
    assert not failures, "\n".join(failures)


def test_every_state_changing_page_checks_csrf(world, make_user):
    """A superuser's session, a POST without the CSRF token: every page route refuses it (403)."""
    admin = make_user(is_superuser=True, is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    failures = []
    checked = 0
    for route in _routes():
        if route.startswith("api/"):
            continue
        checked += 1
        resp = client.post(_fill(route, world["values"]), {"choice": "left", "action": "accept"})
        if resp.status_code not in (403, 405):
            failures.append(f"POST {route}: {resp.status_code}")
    for path in ("/projects/new/", "/accounts/tokens/", "/accounts/tokens/1/revoke/", "/accounts/logout/"):
        resp = client.post(path, {"name": "x"})
        if resp.status_code != 403:
            failures.append(f"POST {path}: {resp.status_code}")
    assert checked > 30
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
def test_the_api_through_a_session_checks_csrf(world, make_user, method):
    """A superuser's browser session, a write to the API without the CSRF token: refused (a
    bearer token needs none; a session does)."""
    admin = make_user(is_superuser=True, is_staff=True)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin)
    failures = []
    for route in [*_routes(), "api/v1/projects/"]:
        if not route.startswith("api/"):
            continue
        path = _fill(route, world["values"]) if "<" in route else "/" + route
        resp = getattr(client, method.lower())(path, {"name": "x", "choice": "left"}, format="json")
        if resp.status_code not in (403, 405):
            failures.append(f"{method} {route}: {resp.status_code}")
    assert not failures, "\n".join(failures)
