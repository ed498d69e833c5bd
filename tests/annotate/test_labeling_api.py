"""The labeling JSON API: claim, submit (idempotent), 403/409 over HTTP, blindness, rate limit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from annotate.models import Annotation, Assignment
from annotate.services.guidelines import guideline_publish
from annotate.services.leasing import MAX_EXCLUDED_LEASES
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    cache.clear()
    return APIClient()


def test_claim_submit_replay_and_blindness(api, make_project, labeler_in):
    project = make_project()
    add_tasks(project, prompts=2)
    alice = labeler_in(project)
    api.force_authenticate(alice)
    resp = api.post(f"/api/v1/labeling/{project.slug}/next", {}, format="json")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert [c["position"] for c in body["candidates"]] == ["left", "right"]
    assert all(set(c) == {"handle", "position", "text"} for c in body["candidates"]), (
        "no model names and no candidate ids for labelers"
    )
    assert [c["handle"] for c in body["candidates"]] == [0, 1]
    url = f"/api/v1/labeling/assignments/{body['assignment_id']}/submit"
    first = api.post(url, {"choice": "left", "strength": 2}, format="json")
    assert first.status_code == 201 and first.json()["created"] is True
    replay = api.post(url, {"choice": "right"}, format="json")
    assert replay.status_code == 200 and replay.json()["annotation_id"] == first.json()["annotation_id"]
    assert Annotation.objects.count() == 1
    ann = Annotation.objects.get()
    left_candidate = ann.assignment.shown_order[body["candidates"][0]["handle"]]
    slots = list(ann.task.slots.order_by("slot").values_list("candidate_id", flat=True))
    assert ann.choice == ("a" if slots[0] == left_candidate else "b")


def test_foreign_and_expired_leases_over_http(api, make_project, labeler_in):
    project = make_project(lease_ttl_seconds=60)
    add_tasks(project, prompts=2)
    alice, mallory = labeler_in(project), labeler_in(project)
    api.force_authenticate(alice)
    lease_id = api.post(f"/api/v1/labeling/{project.slug}/next", {}, format="json").json()["assignment_id"]
    api.force_authenticate(mallory)
    resp = api.post(f"/api/v1/labeling/assignments/{lease_id}/submit", {"choice": "left"}, format="json")
    assert resp.status_code == 404, "another labeler's lease is not revealed"
    Assignment.objects.filter(pk=lease_id).update(
        expires_at=timezone.now() - timedelta(seconds=1), leased_at=timezone.now() - timedelta(seconds=61)
    )
    api.force_authenticate(alice)
    resp = api.post(f"/api/v1/labeling/assignments/{lease_id}/submit", {"choice": "left"}, format="json")
    assert resp.status_code == 409 and resp.json()["error"] == "lease_expired"
    assert Annotation.objects.count() == 0


def test_bad_values_are_400_with_the_field(api, make_project, labeler_in):
    project = make_project(allow_both_bad=False)
    add_tasks(project, prompts=1)
    alice = labeler_in(project)
    api.force_authenticate(alice)
    lease_id = api.post(f"/api/v1/labeling/{project.slug}/next", {}, format="json").json()["assignment_id"]
    resp = api.post(f"/api/v1/labeling/assignments/{lease_id}/submit", {"choice": "both_bad"}, format="json")
    assert resp.status_code == 400 and resp.json()["field"] == "choice"
    resp = api.post(
        f"/api/v1/labeling/assignments/{lease_id}/submit",
        {"choice": "left", "time_spent_ms": -5},
        format="json",
    )
    assert resp.status_code == 400


def test_guidelines_gate_and_acknowledge(api, make_project, labeler_in, make_user):
    project = make_project()
    add_tasks(project, prompts=1)
    guideline_publish(project=project, actor=make_user(), body="Be kind.")
    alice = labeler_in(project)
    api.force_authenticate(alice)
    body = api.post(f"/api/v1/labeling/{project.slug}/next", {}, format="json").json()
    assert body["guideline_to_acknowledge"] == 1
    url = f"/api/v1/labeling/assignments/{body['assignment_id']}/submit"
    assert api.post(url, {"choice": "left"}, format="json").status_code == 409
    assert api.post(f"/api/v1/labeling/{project.slug}/acknowledge-guidelines").json() == {"version": 1}
    assert api.post(url, {"choice": "left"}, format="json").status_code == 201


def test_non_labelers_and_strangers_cannot_claim(api, make_project, labeler_in, make_user):
    project = make_project()
    add_tasks(project, prompts=1)
    researcher = labeler_in(project, role="researcher")
    api.force_authenticate(researcher)
    assert api.post(f"/api/v1/labeling/{project.slug}/next").status_code == 403
    api.force_authenticate(make_user())
    assert api.post(f"/api/v1/labeling/{project.slug}/next").status_code == 404
    api.force_authenticate(None)
    assert api.post(f"/api/v1/labeling/{project.slug}/next").status_code in (401, 403)


def test_no_more_tasks_is_204(api, make_project, labeler_in):
    project = make_project()
    alice = labeler_in(project)
    api.force_authenticate(alice)
    assert api.post(f"/api/v1/labeling/{project.slug}/next").status_code == 204


def test_claims_are_rate_limited(api, make_project, labeler_in, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(
        ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES, "claim": "3/min"}
    )
    project = make_project()
    alice = labeler_in(project)
    api.force_authenticate(alice)
    codes = [api.post(f"/api/v1/labeling/{project.slug}/next").status_code for _ in range(4)]
    assert codes == [204, 204, 204, 429]


def test_ranking_by_opaque_handles_never_candidate_ids(api, make_project, labeler_in):
    """LOW finding: ids follow import order, so a client that saw them would know which response
    came first in the source. The API speaks per-lease handles (display positions) only."""
    from annotate.models import Candidate, TaskKind

    project = make_project(kind=TaskKind.RANKING, ranking_k=3)
    add_tasks(project, prompts=1, candidates_per_prompt=3)
    alice = labeler_in(project)
    api.force_authenticate(alice)
    body = api.post(f"/api/v1/labeling/{project.slug}/next", {}, format="json").json()
    ids = set(Candidate.objects.values_list("pk", flat=True))
    assert [c["handle"] for c in body["candidates"]] == [0, 1, 2]
    assert "id" not in str([sorted(c) for c in body["candidates"]])
    url = f"/api/v1/labeling/assignments/{body['assignment_id']}/submit"
    by_ids = api.post(url, {"ranking": [[i] for i in sorted(ids)]}, format="json")
    assert by_ids.status_code == 400 and by_ids.json()["field"] == "ranking"
    resp = api.post(url, {"ranking": [[2], [0], [1]]}, format="json")
    assert resp.status_code == 201, resp.content
    ann = Annotation.objects.get()
    shown = ann.assignment.shown_order
    assert ann.ranking == [[shown[2]], [shown[0]], [shown[1]]]


@pytest.mark.parametrize("bad_id", [2**63, 2**70, -(2**63) - 1])
def test_an_excluded_id_beyond_64_bits_is_a_400_not_a_500(api, make_project, labeler_in, client, bad_id):
    """Ids to exclude go to the claim statement as bigint[]: one that cannot be a 64-bit id is a
    400 naming the field (through the API and the labeling page's prefetch), and nothing is leased."""
    project = make_project()
    add_tasks(project, prompts=2)
    alice = labeler_in(project)
    api.force_authenticate(alice)
    resp = api.post(
        f"/api/v1/labeling/{project.slug}/next", {"exclude_assignment_ids": [bad_id]}, format="json"
    )
    assert resp.status_code == 400, resp.content
    assert resp.json()["field"] == "exclude_assignment_ids"
    client.force_login(alice)
    page = client.post(
        f"/projects/{project.slug}/label/next/", {"exclude": [bad_id]}, content_type="application/json"
    )
    assert page.status_code == 400, page.content
    assert not Assignment.objects.filter(labeler=alice).exists()


def test_the_exclude_list_is_bounded_the_same_way_for_the_api_and_the_page(
    api, make_project, labeler_in, client
):
    """A labeler holds at most a couple of leases, so a long exclude list means nothing; both ways in
    refuse one above the service's bound with a 400 and lease nothing."""
    project = make_project()
    add_tasks(project, prompts=2)
    alice = labeler_in(project)
    api.force_authenticate(alice)
    too_many = list(range(1, MAX_EXCLUDED_LEASES + 2))
    resp = api.post(
        f"/api/v1/labeling/{project.slug}/next", {"exclude_assignment_ids": too_many}, format="json"
    )
    assert resp.status_code == 400, resp.content
    assert resp.json()["field"] == "exclude_assignment_ids"
    client.force_login(alice)
    page = client.post(
        f"/projects/{project.slug}/label/next/", {"exclude": too_many}, content_type="application/json"
    )
    assert page.status_code == 400, page.content
    assert not Assignment.objects.filter(labeler=alice).exists()
    ok = api.post(
        f"/api/v1/labeling/{project.slug}/next",
        {"exclude_assignment_ids": too_many[:MAX_EXCLUDED_LEASES]},
        format="json",
    )
    assert ok.status_code == 200, ok.content
