"""Every API route answers with and without its trailing slash (core.api_slashes): the documented
form is the canonical one, the other reaches the same view for every method.

Before, a route was reachable in one form only (labeling routes without a slash, most others with
one, one job route in both through a hand-written alias): a POST to the other form answered 404,
or with Django's APPEND_SLASH a 301 to a GET (a 405), or under DEBUG a 500 (CommonMiddleware's
RuntimeError)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.test_permission_matrix import _fill, _walk, world  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db


def _api_routes() -> list[str]:
    from django.urls import get_resolver

    return [r for r in _walk(get_resolver().url_patterns) if r.startswith("api/v1/")]


def _toggled(path: str) -> str:
    return path[:-1] if path.endswith("/") else path + "/"


def test_the_api_routes_are_found():
    routes = _api_routes()
    assert len(routes) >= 25
    assert any(r.endswith("/submit") for r in routes) and any(r.endswith("/cancel/") for r in routes)
    assert not any(r.endswith("/release/") for r in routes), "no hand-written aliases: one rule serves both"


def test_both_forms_of_every_route_read_the_same(world):  # noqa: F811
    client = APIClient()
    client.force_authenticate(world["insider"])
    for route in _api_routes():
        path = _fill(route, world["insider_values"])
        canonical, other = client.get(path), client.get(_toggled(path))
        assert other.status_code == canonical.status_code, (route, canonical.status_code, other.status_code)
        assert other.status_code not in (301, 308, 404, 500), route
        if canonical.status_code != 200:
            continue
        if canonical.streaming:  # a file (an export's manifest.json too): the same bytes
            assert b"".join(other.streaming_content) == b"".join(canonical.streaming_content), route
        elif canonical["Content-Type"] == "application/json":
            assert other.json().keys() == canonical.json().keys(), route


def test_a_post_to_the_other_form_of_every_route_reaches_its_view(world):  # noqa: F811
    """Posted to the undocumented form first (a POST changes things, so the two forms are not
    compared): the view answers, whatever it answers, and a GET-only route still says 405."""
    client = APIClient()
    client.force_authenticate(world["insider"])
    for route in _api_routes():
        path = _fill(route, world["insider_values"])
        other = client.post(_toggled(path), {}, format="json")
        assert other.status_code not in (301, 308, 404, 500), (route, other.status_code, other.content[:200])
        if other.status_code == 405:
            assert client.post(path, {}, format="json").status_code == 405, route


def test_a_post_to_the_other_form_does_the_work(world, settings):  # noqa: F811
    """Under DEBUG too, where CommonMiddleware raised on a POST it would have redirected."""
    settings.DEBUG = True
    client = APIClient()
    client.force_authenticate(world["insider"])
    lease = world["insider_values"]["assignment_id"]
    ack = client.post(
        f"/api/v1/labeling/{world['target'].slug}/acknowledge-guidelines/", {"version": 1}, format="json"
    )
    assert ack.status_code in (200, 201, 204), ack.content
    resp = client.post(f"/api/v1/labeling/assignments/{lease}/submit/", {"choice": "left"}, format="json")
    assert resp.status_code == 201, resp.content
    resp = client.get(f"/api/v1/projects/{world['target'].slug}")
    assert resp.status_code == 200 and resp.json()["slug"] == world["target"].slug


def test_unknown_api_paths_stay_404():
    client = APIClient()
    assert client.get("/api/v1/nothing-here").status_code == 404
    assert client.get("/api/v1/nothing-here/").status_code == 404


def test_a_doubled_slash_is_not_folded_onto_another_route(world):  # noqa: F811
    client = APIClient()
    client.force_authenticate(world["insider"])
    assert client.get("/api/v1/projects//").status_code == 404
    assert client.get("/api/v1/projects/").status_code == 200
