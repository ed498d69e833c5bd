"""Defects of the labeling API a user-journey probe found: the lease limit answered like an empty
queue (6), acknowledging guidelines ignored what the client read (7), no lease renewal (17b)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from annotate.models import Assignment, AssignmentState, GuidelineAck
from annotate.services.guidelines import guideline_publish
from annotate.services.leasing import MAX_LIVE_LEASES_PER_LABELER
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    cache.clear()
    return APIClient()


@pytest.fixture
def signed_in(api, make_project, labeler_in):
    """``signed_in(prompts, **project)``: a project with ``prompts`` prompts' tasks and a labeler
    signed in to the API client; returns (project, labeler)."""

    def make(prompts: int, **project_values):
        project = make_project(**project_values)
        add_tasks(project, prompts=prompts)
        labeler = labeler_in(project)
        api.force_authenticate(labeler)
        return project, labeler

    return make


def _next(api, slug, exclude=()):
    return api.post(f"/api/v1/labeling/{slug}/next", {"exclude_assignment_ids": list(exclude)}, format="json")


def _expire(lease_id):
    now = timezone.now()
    Assignment.objects.filter(pk=lease_id).update(
        leased_at=now - timedelta(seconds=61), expires_at=now - timedelta(seconds=1)
    )


# --- 6: the live-lease limit is not "nothing left" ------------------------------------------------


def test_the_lease_limit_is_a_409_naming_the_held_leases_not_a_204(api, signed_in):
    project, _ = signed_in(5)
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


def test_204_still_means_nothing_is_left(api, signed_in):
    project, _ = signed_in(1)
    first = _next(api, project.slug).json()["assignment_id"]
    assert _next(api, project.slug, [first]).status_code == 204, "one lease held, none free: empty"
    api.post(f"/api/v1/labeling/assignments/{first}/submit", {"choice": "left"}, format="json")
    assert _next(api, project.slug).status_code == 204


def test_an_expired_lease_does_not_count_against_the_limit(api, signed_in):
    project, _ = signed_in(4)
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


# --- 7: acknowledging names the version read --------------------------------------------------------


@pytest.fixture
def two_versions(make_project, labeler_in, make_user):
    project = make_project()
    add_tasks(project, prompts=2)
    manager = make_user()
    v1 = guideline_publish(project=project, actor=manager, body="Be kind.")
    v2 = guideline_publish(project=project, actor=manager, body="Be kind and brief.")
    return project, v1, v2, labeler_in(project)


def _ack(api, slug, body=None):
    return api.post(f"/api/v1/labeling/{slug}/acknowledge-guidelines", body, format="json")


def test_acknowledging_an_old_version_is_a_409_naming_the_current_one(api, two_versions):
    project, v1, v2, alice = two_versions
    api.force_authenticate(alice)
    resp = _ack(api, project.slug, {"version": 1})
    assert resp.status_code == 409, (resp.status_code, resp.content)
    body = resp.json()
    assert body["error"] == "guideline_not_current"
    assert "version 2" in body["detail"]
    assert body["details"] == {"current_version": 2, "current_guideline_id": v2.pk}
    resp = _ack(api, project.slug, {"guideline_id": v1.pk})
    assert resp.status_code == 409 and resp.json()["details"]["current_version"] == 2
    assert not GuidelineAck.objects.filter(user=alice).exists()


def test_acknowledging_the_current_version_by_version_or_id(api, two_versions):
    project, _v1, v2, alice = two_versions
    api.force_authenticate(alice)
    resp = _ack(api, project.slug, {"version": 2})
    assert resp.status_code == 200 and resp.json() == {"version": 2}
    assert GuidelineAck.objects.filter(user=alice, guideline=v2).exists()
    GuidelineAck.objects.all().delete()
    resp = _ack(api, project.slug, {"guideline_id": v2.pk})
    assert resp.status_code == 200 and resp.json() == {"version": 2}
    assert GuidelineAck.objects.filter(user=alice, guideline=v2).exists()
    resp = _ack(api, project.slug, {"version": 2, "guideline_id": v2.pk})
    assert resp.status_code == 200


def test_unknown_or_contradictory_versions_are_refused(api, two_versions, make_project, make_user):
    project, v1, _v2, alice = two_versions
    other = make_project()
    foreign = guideline_publish(project=other, actor=make_user(), body="Elsewhere.")
    api.force_authenticate(alice)
    assert _ack(api, project.slug, {"guideline_id": 999_999}).status_code == 404
    assert _ack(api, project.slug, {"guideline_id": foreign.pk}).status_code == 404
    assert _ack(api, project.slug, {"version": 7}).status_code == 404
    bad = _ack(api, project.slug, {"version": "two"})
    assert bad.status_code == 400 and bad.json()["field"] == "version"
    both = _ack(api, project.slug, {"version": 2, "guideline_id": v1.pk})
    assert both.status_code == 400
    assert not GuidelineAck.objects.filter(user=alice).exists()


def test_an_empty_body_still_acknowledges_the_current_version(api, two_versions):
    """Backwards compatible: clients written before the body existed keep working."""
    project, _v1, v2, alice = two_versions
    api.force_authenticate(alice)
    resp = _ack(api, project.slug)
    assert resp.status_code == 200 and resp.json() == {"version": 2}
    assert GuidelineAck.objects.filter(user=alice, guideline=v2).exists()


def test_the_acknowledge_body_is_documented():
    from tests.openapi import api_schema, resolve

    schema = api_schema()
    op = schema["paths"]["/api/v1/labeling/{slug}/acknowledge-guidelines"]["post"]
    body = resolve(schema, op["requestBody"]["content"]["application/json"]["schema"])
    assert {"version", "guideline_id"} <= set(body["properties"])
    assert "409" in op["responses"] and "400" in op["responses"]


# --- 17b: renew a lease through the API -------------------------------------------------------------


def test_a_lease_can_be_renewed_through_the_api(api, make_project, labeler_in):
    project = make_project(lease_ttl_seconds=600)
    add_tasks(project, prompts=2)
    alice, bob = labeler_in(project), labeler_in(project)
    api.force_authenticate(alice)
    lease_id = _next(api, project.slug).json()["assignment_id"]
    soon = timezone.now() + timedelta(seconds=30)
    Assignment.objects.filter(pk=lease_id).update(expires_at=soon)
    resp = api.post(f"/api/v1/labeling/assignments/{lease_id}/renew")
    assert resp.status_code == 200, (resp.status_code, resp.content)
    body = resp.json()
    assert body["assignment_id"] == lease_id
    renewed = Assignment.objects.get(pk=lease_id).expires_at
    assert renewed > soon + timedelta(seconds=500)
    assert body["expires_at"].startswith(renewed.isoformat()[:19])
    api.force_authenticate(bob)
    assert api.post(f"/api/v1/labeling/assignments/{lease_id}/renew").status_code == 404
    api.force_authenticate(alice)
    _expire(lease_id)
    late = api.post(f"/api/v1/labeling/assignments/{lease_id}/renew")
    assert late.status_code == 409 and late.json()["error"] == "lease_expired"
    Assignment.objects.filter(pk=lease_id).update(
        state=AssignmentState.SKIPPED, expires_at=timezone.now() + timedelta(seconds=60)
    )
    gone = api.post(f"/api/v1/labeling/assignments/{lease_id}/renew")
    assert gone.status_code == 409 and gone.json()["error"] == "lease_not_live"


def test_renewal_has_the_documented_shape(api, signed_in):
    from tests.openapi import assert_documented

    project, _ = signed_in(1)
    lease_id = _next(api, project.slug).json()["assignment_id"]
    resp = api.post(f"/api/v1/labeling/assignments/{lease_id}/renew")
    assert_documented(resp, "POST", "/api/v1/labeling/assignments/{assignment_id}/renew")
