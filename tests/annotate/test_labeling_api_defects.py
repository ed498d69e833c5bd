"""Defects of the labeling API a user-journey probe found: the lease limit answered like an empty
queue (6), acknowledging guidelines ignored what the client read (7), no lease renewal (17b)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from annotate.models import Assignment
from annotate.services.leasing import MAX_LIVE_LEASES_PER_LABELER
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    cache.clear()
    return APIClient()


def _next(api, slug, exclude=()):
    return api.post(f"/api/v1/labeling/{slug}/next", {"exclude_assignment_ids": list(exclude)}, format="json")


def _expire(lease_id):
    now = timezone.now()
    Assignment.objects.filter(pk=lease_id).update(
        leased_at=now - timedelta(seconds=61), expires_at=now - timedelta(seconds=1)
    )


# --- 6: the live-lease limit is not "nothing left" ------------------------------------------------


def test_the_lease_limit_is_a_409_naming_the_held_leases_not_a_204(api, make_project, labeler_in):
    project = make_project()
    add_tasks(project, prompts=5)
    alice = labeler_in(project)
    api.force_authenticate(alice)
    held = []
    for _ in range(MAX_LIVE_LEASES_PER_LABELER):
        resp = _next(api, project.slug, held)
        assert resp.status_code == 200, resp.content
        held.append(resp.json()["assignment_id"])
    resp = _next(api, project.slug, held)
    assert resp.status_code == 409, (resp.status_code, resp.content)
    body = resp.json()
    assert body["error"] == "lease_limit"
    assert sorted(body["details"]["assignment_ids"]) == sorted(held)
    assert body["details"]["max_live_leases"] == MAX_LIVE_LEASES_PER_LABELER
    for lease_id in held:
        assert str(lease_id) in body["detail"]
    assert "submit" in body["detail"].lower() and "skip" in body["detail"]
    # finishing one of them makes room again
    skip = api.post(f"/api/v1/labeling/assignments/{held[0]}/skip", {"reason": "not for me"}, format="json")
    assert skip.status_code == 200
    assert _next(api, project.slug, held).status_code == 200


def test_204_still_means_nothing_is_left(api, make_project, labeler_in):
    project = make_project()
    add_tasks(project, prompts=1)
    alice = labeler_in(project)
    api.force_authenticate(alice)
    first = _next(api, project.slug).json()["assignment_id"]
    assert _next(api, project.slug, [first]).status_code == 204, "one lease held, none free: empty"
    api.post(f"/api/v1/labeling/assignments/{first}/submit", {"choice": "left"}, format="json")
    assert _next(api, project.slug).status_code == 204


def test_an_expired_lease_does_not_count_against_the_limit(api, make_project, labeler_in):
    project = make_project()
    add_tasks(project, prompts=4)
    alice = labeler_in(project)
    api.force_authenticate(alice)
    held = [_next(api, project.slug).json()["assignment_id"]]
    held.append(_next(api, project.slug, held).json()["assignment_id"])
    _expire(held[0])
    assert _next(api, project.slug, held).status_code == 200


def test_the_limit_and_its_answer_are_documented():
    from tests.openapi import api_schema

    op = api_schema()["paths"]["/api/v1/labeling/{slug}/next"]["post"]
    assert "409" in op["responses"]
    assert "lease_limit" in op["description"]
    assert str(MAX_LIVE_LEASES_PER_LABELER) in op["description"]


def test_the_labeling_page_still_says_busy_at_the_limit(client, make_project, labeler_in):
    project = make_project()
    add_tasks(project, prompts=5)
    alice = labeler_in(project)
    client.force_login(alice)
    url = f"/projects/{project.slug}/label/next/"
    held = []
    for _ in range(MAX_LIVE_LEASES_PER_LABELER):
        resp = client.post(url, {"exclude": held}, content_type="application/json")
        held.append(resp.json()["assignment_id"])
    resp = client.post(url, {"exclude": held}, content_type="application/json")
    assert resp.status_code == 200 and resp.json()["state"] == "busy"
