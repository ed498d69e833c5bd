"""The labeler's workspace endpoints and the manager's pages, through Django's test client."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from annotate.models import (
    Annotation,
    Assignment,
    AssignmentState,
    AuditEvent,
    Choice,
    Guideline,
    GuidelineAck,
    Membership,
    Role,
    TaskCandidate,
    TaskKind,
)
from annotate.services.guidelines import guideline_publish
from annotate.services.leasing import task_claim_next
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def post_json(client, url, body=None):
    return client.post(url, data=json.dumps(body or {}), content_type="application/json")


@pytest.fixture
def pairwise(make_project, labeler_in):
    project = make_project(name="Pairs", dimensions=[{"label": "Helpfulness", "required": False}])
    add_tasks(project, prompts=3)
    labeler = labeler_in(project, "lab")
    return project, labeler


@pytest.fixture
def manager_of(labeler_in):
    def _make(project, username="boss"):
        return labeler_in(project, username, role=Role.MANAGER)

    return _make


def login(client, user):
    client.force_login(user)
    return client


# --- labeler -------------------------------------------------------------------------------------


def test_anonymous_is_sent_to_login(client, pairwise):
    project, _ = pairwise
    for url in (reverse("annotate:home"), reverse("annotate:label", args=[project.slug])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_home_lists_own_projects_with_progress(client, pairwise, make_project):
    _, labeler = pairwise
    make_project(name="Not mine")
    body = login(client, labeler).get(reverse("annotate:home")).content.decode()
    assert "Pairs" in body and "Not mine" not in body
    assert "Start labeling" in body
    assert "3</strong> left" in body


def test_guidelines_must_be_acknowledged_before_labeling(client, pairwise, manager_of):
    project, labeler = pairwise
    guideline = guideline_publish(
        project=project, actor=manager_of(project), body="# Be kind\n\nJudge **helpfulness**."
    )
    login(client, labeler)
    response = client.get(reverse("annotate:label", args=[project.slug]))
    assert response.status_code == 200
    assert b"Before you start" in response.content and b"<strong>helpfulness</strong>" in response.content
    assert not Assignment.objects.exists()  # no task is leased before the guidelines are read
    response = client.post(
        reverse("annotate:guideline_ack", args=[project.slug]), {"guideline_id": guideline.pk}
    )
    assert response.status_code == 302
    assert GuidelineAck.objects.filter(guideline=guideline, user=labeler).exists()
    response = client.get(reverse("annotate:label", args=[project.slug]))
    assert b'class="task task-pairwise"' in response.content


def test_label_page_is_blind(client, pairwise):
    project, labeler = pairwise
    body = login(client, labeler).get(reverse("annotate:label", args=[project.slug])).content.decode()
    assert "Question" in body and "Answer" in body
    assert "model-0" not in body and "model-1" not in body  # no model names
    # Responses are addressed by display position only: no candidate ids, no source metadata.
    assert "candidate" not in body.lower()
    assert set(re.findall(r'data-position="([^"]*)"', body)) == {"0", "1"}


def test_prefetch_holds_a_second_lease_and_submit_maps_left_to_canonical(client, pairwise):
    project, labeler = pairwise
    login(client, labeler)
    client.get(reverse("annotate:label", args=[project.slug]))
    first = Assignment.objects.get(labeler=labeler)
    response = post_json(client, reverse("annotate:label_next", args=[project.slug]), {"exclude": [first.pk]})
    data = response.json()
    assert data["state"] == "task" and data["assignment_id"] != first.pk
    assert f'data-assignment-id="{data["assignment_id"]}"' in data["html"]
    assert "model-" not in data["html"]
    assert Assignment.objects.filter(labeler=labeler, state=AssignmentState.LIVE).count() == 2

    response = post_json(
        client,
        reverse("annotate:label_submit", args=[project.slug, first.pk]),
        {
            "choice": "left",
            "strength": 2,
            "ratings": {"helpfulness": {"0": 4, "1": 2}},
            "time_spent_ms": 1234,
        },
    )
    assert response.status_code == 200, response.content
    assert response.json()["progress"]["done"] == 1
    annotation = Annotation.objects.get(assignment=first)
    slots = list(
        TaskCandidate.objects.filter(task=first.task).order_by("slot").values_list("candidate_id", flat=True)
    )
    left_candidate = first.shown_order[0]
    assert annotation.choice == (Choice.A if slots.index(left_candidate) == 0 else Choice.B)
    assert annotation.strength == 2
    assert annotation.ratings == {"helpfulness": {str(first.shown_order[0]): 4, str(first.shown_order[1]): 2}}
    assert annotation.time_spent_ms == 1234


def test_left_means_b_when_b_is_shown_on_the_left(client, pairwise):
    project, labeler = pairwise
    login(client, labeler)
    lease = task_claim_next(project=project, labeler=labeler)
    slots = list(
        TaskCandidate.objects.filter(task=lease.task).order_by("slot").values_list("candidate_id", flat=True)
    )
    lease.shown_order = [slots[1], slots[0]]  # B on the left
    lease.save(update_fields=["shown_order"])
    response = post_json(
        client, reverse("annotate:label_submit", args=[project.slug, lease.pk]), {"choice": "left"}
    )
    assert response.status_code == 200
    assert Annotation.objects.get(assignment=lease).choice == Choice.B


def test_skip_undo_and_replay(client, pairwise):
    project, labeler = pairwise
    login(client, labeler)
    lease = task_claim_next(project=project, labeler=labeler)
    url = reverse("annotate:label_submit", args=[project.slug, lease.pk])
    assert post_json(client, url, {"choice": "tie"}).status_code == 200
    again = post_json(client, url, {"choice": "left"})
    assert (
        again.status_code == 200 and again.json()["created"] is False and "already" in again.json()["message"]
    )
    assert Annotation.objects.get(assignment=lease).choice == Choice.TIE

    response = post_json(client, reverse("annotate:label_undo", args=[project.slug, lease.pk]))
    assert response.status_code == 200 and response.json()["progress"]["done"] == 0
    assert not Annotation.objects.exists()
    lease.refresh_from_db()
    assert lease.state == AssignmentState.LIVE

    response = post_json(
        client, reverse("annotate:label_skip", args=[project.slug, lease.pk]), {"reason": ""}
    )
    assert response.status_code == 400 and response.json()["field"] == "reason"
    response = post_json(
        client, reverse("annotate:label_skip", args=[project.slug, lease.pk]), {"reason": "Not my field"}
    )
    assert response.status_code == 200
    lease.refresh_from_db()
    assert lease.state == AssignmentState.SKIPPED and lease.skip_reason == "Not my field"


def test_flag_without_choice_needs_a_reason(client, pairwise):
    project, labeler = pairwise
    login(client, labeler)
    lease = task_claim_next(project=project, labeler=labeler)
    url = reverse("annotate:label_submit", args=[project.slug, lease.pk])
    response = post_json(client, url, {"flagged": True, "flag_reason": ""})
    assert response.status_code == 400 and response.json()["field"] == "flag_reason"
    response = post_json(client, url, {"flagged": True, "flag_reason": "Contains a phone number"})
    assert response.status_code == 200
    annotation = Annotation.objects.get(assignment=lease)
    assert (
        annotation.flagged
        and annotation.choice is None
        and annotation.flag_reason == "Contains a phone number"
    )


def test_service_errors_come_back_as_json_with_their_status(client, pairwise, manager_of):
    project, labeler = pairwise
    login(client, labeler)
    lease = task_claim_next(project=project, labeler=labeler)
    url = reverse("annotate:label_submit", args=[project.slug, lease.pk])
    response = post_json(client, url, {"choice": "sideways"})
    assert response.status_code == 400 and response.json()["field"] == "choice"
    response = client.post(url, data="{not json", content_type="application/json")
    assert response.status_code == 400

    guideline_publish(project=project, actor=manager_of(project), body="New rules")
    response = post_json(client, url, {"choice": "left"})
    assert response.status_code == 409 and response.json()["error"] == "guideline_not_acknowledged"
    pending = client.get(reverse("annotate:guideline_current", args=[project.slug])).json()
    assert pending["pending"] is True and pending["guideline"]["version"] == 1
    response = post_json(
        client,
        reverse("annotate:guideline_ack", args=[project.slug]),
        {"guideline_id": pending["guideline"]["id"]},
    )
    assert response.json() == {"ok": True, "version": 1, "pending": False}

    Assignment.objects.filter(pk=lease.pk).update(
        leased_at=timezone.now() - timedelta(hours=2), expires_at=timezone.now() - timedelta(hours=1)
    )
    response = post_json(client, url, {"choice": "left"})
    assert response.status_code == 409 and response.json()["error"] == "lease_expired"
    assert not Annotation.objects.exists()


def test_next_says_done_when_nothing_is_left(client, make_project, labeler_in):
    project = make_project()
    add_tasks(project, prompts=1)
    labeler = labeler_in(project)
    login(client, labeler)
    lease = task_claim_next(project=project, labeler=labeler)
    data = post_json(
        client, reverse("annotate:label_next", args=[project.slug]), {"exclude": [lease.pk]}
    ).json()
    assert data["state"] == "done" and "All caught up" in data["html"]


def test_ranking_positions_map_to_candidates_with_ties(client, make_project, labeler_in):
    project = make_project(kind=TaskKind.RANKING, ranking_k=3, allow_rank_ties=True)
    add_tasks(project, prompts=1, candidates_per_prompt=3)
    labeler = labeler_in(project)
    login(client, labeler)
    body = client.get(reverse("annotate:label", args=[project.slug])).content.decode()
    assert 'class="rank-list"' in body
    lease = Assignment.objects.get(labeler=labeler)
    shown = lease.shown_order
    response = post_json(
        client, reverse("annotate:label_submit", args=[project.slug, lease.pk]), {"ranking": [[2], [0, 1]]}
    )
    assert response.status_code == 200, response.content
    assert Annotation.objects.get(assignment=lease).ranking == [[shown[2]], [shown[0], shown[1]]]


def test_ranking_rejects_positions_outside_the_task(client, make_project, labeler_in):
    project = make_project(kind=TaskKind.RANKING, ranking_k=2)
    add_tasks(project, prompts=1, candidates_per_prompt=2)
    labeler = labeler_in(project)
    login(client, labeler)
    lease = task_claim_next(project=project, labeler=labeler)
    response = post_json(
        client, reverse("annotate:label_submit", args=[project.slug, lease.pk]), {"ranking": [[0], [7]]}
    )
    assert response.status_code == 400


# --- permissions -------------------------------------------------------------------------------------

MANAGER_PAGES = [
    "annotate:manage_progress",
    "annotate:manage_settings",
    "annotate:manage_guidelines",
    "annotate:manage_members",
    "annotate:manage_import",
    "annotate:manage_audit",
]


@pytest.mark.parametrize("name", MANAGER_PAGES)
def test_labeler_cannot_reach_manager_pages(client, pairwise, name):
    project, labeler = pairwise
    login(client, labeler)
    assert client.get(reverse(name, args=[project.slug])).status_code == 403
    assert client.post(reverse(name, args=[project.slug]), {}).status_code in (403, 405)


def test_labeler_cannot_post_manager_actions(client, pairwise, manager_of):
    project, labeler = pairwise
    boss = manager_of(project)
    login(client, labeler)
    membership = Membership.objects.get(user=boss)
    assert (
        client.post(
            reverse("annotate:manage_member_deactivate", args=[project.slug, membership.pk])
        ).status_code
        == 403
    )
    assert (
        client.post(
            reverse("annotate:manage_guideline_preview", args=[project.slug]), {"body": "x"}
        ).status_code
        == 403
    )
    assert (
        client.post(
            reverse("annotate:manage_guidelines", args=[project.slug]), {"body": "Mine now"}
        ).status_code
        == 403
    )
    assert not Guideline.objects.exists()
    membership.refresh_from_db()
    assert membership.is_active


@pytest.mark.parametrize(
    "name",
    ["annotate:label", "annotate:guidelines", *MANAGER_PAGES],
)
def test_other_projects_are_invisible(client, pairwise, make_project, name):
    _, labeler = pairwise
    other = make_project(name="Secret")
    login(client, labeler)
    assert client.get(reverse(name, args=[other.slug])).status_code == 404
    assert client.get(reverse(name, args=["no-such-project"])).status_code == 404


def test_labeler_cannot_touch_someone_elses_lease(client, pairwise, labeler_in):
    project, labeler = pairwise
    other = labeler_in(project, "other")
    lease = task_claim_next(project=project, labeler=other)
    login(client, labeler)
    for name in ("annotate:label_submit", "annotate:label_skip", "annotate:label_undo"):
        response = post_json(
            client, reverse(name, args=[project.slug, lease.pk]), {"choice": "left", "reason": "x"}
        )
        assert response.status_code == 404
    assert not Annotation.objects.exists()


def test_researcher_cannot_label(client, pairwise, labeler_in):
    project, _ = pairwise
    researcher = labeler_in(project, "res", role=Role.RESEARCHER)
    login(client, researcher)
    assert client.get(reverse("annotate:label", args=[project.slug])).status_code == 403
    assert post_json(client, reverse("annotate:label_next", args=[project.slug])).status_code == 403
    assert client.get(reverse("annotate:manage_settings", args=[project.slug])).status_code == 403


def test_deactivated_labeler_is_refused(client, pairwise):
    project, labeler = pairwise
    Membership.objects.filter(user=labeler).update(is_active=False)
    login(client, labeler)
    # A former member knows the project exists: 403 saying they were removed, not a 404.
    response = client.get(reverse("annotate:label", args=[project.slug]))
    assert response.status_code == 403
    assert b"You are no longer a member of this project" in response.content


# --- manager ------------------------------------------------------------------------------------------


def test_progress_page_shows_tasks_and_labelers(client, pairwise, manager_of):
    project, labeler = pairwise
    lease = task_claim_next(project=project, labeler=labeler)
    from annotate.services.leasing import annotation_submit

    annotation_submit(assignment_id=lease.pk, labeler=labeler, choice="left", time_spent_ms=42_000)
    login(client, manager_of(project))
    body = client.get(reverse("annotate:manage_progress", args=[project.slug])).content.decode()
    assert "lab" in body and "42 s" in body
    assert f"/reports/{project.slug}/" in body


def test_settings_update_is_audited(client, pairwise, manager_of):
    project, _ = pairwise
    boss = manager_of(project)
    login(client, boss)
    url = reverse("annotate:manage_settings", args=[project.slug])
    page = client.get(url).content.decode()
    assert "Pairwise (A/B)" in page and "Allow ties in rankings" not in page
    form = {
        "name": "Pairs v2",
        "description": "",
        "overlap": "2",
        "lease_ttl_minutes": "20",
        "rating_scale_max": "7",
        "allow_tie": "on",
        "strength_scale": "on",
        "dim-TOTAL_FORMS": "2",
        "dim-INITIAL_FORMS": "1",
        "dim-MIN_NUM_FORMS": "0",
        "dim-MAX_NUM_FORMS": "20",
        "dim-0-label": "Helpfulness",
        "dim-0-key": "helpfulness",
        "dim-0-required": "on",
        "dim-1-label": "Honesty",
    }
    response = client.post(url, form)
    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.name, project.overlap, project.lease_ttl_seconds, project.rating_scale_max) == (
        "Pairs v2",
        2,
        1200,
        7,
    )
    assert project.allow_both_bad is False
    assert [(d.key, d.required) for d in project.dimensions.all()] == [
        ("helpfulness", True),
        ("honesty", False),
    ]
    event = AuditEvent.objects.get(action="project.settings")
    assert event.actor == boss and event.project == project
    assert event.details["changes"]["overlap"] == [1, 2]
    assert "dimensions" in event.details["changes"]
    response = client.post(url, {**form, "overlap": "0"})
    assert response.status_code == 400 and b"greater than or equal to 1" in response.content


def test_guideline_publish_preview_history_and_diff(client, pairwise, manager_of):
    project, labeler = pairwise
    boss = manager_of(project)
    login(client, boss)
    url = reverse("annotate:manage_guidelines", args=[project.slug])
    assert client.post(url, {"body": "# Rules\n\nBe fair.", "change_note": "first"}).status_code == 302
    assert (
        client.post(url, {"body": "# Rules\n\nBe fair and kind.", "change_note": "kindness"}).status_code
        == 302
    )
    assert list(Guideline.objects.values_list("version", flat=True)) == [2, 1]
    events = AuditEvent.objects.filter(action="guideline.publish").order_by("id")
    assert [e.details["version"] for e in events] == [1, 2] and events[1].actor == boss
    same = client.post(url, {"body": "# Rules\n\nBe fair and kind.", "change_note": ""})
    assert same.status_code == 400 and b"same as the current version" in same.content

    page = client.get(url).content.decode()
    assert "v2" in page and "kindness" in page and "Publish version 3" in page

    preview = client.post(
        reverse("annotate:manage_guideline_preview", args=[project.slug]),
        {"body": "**bold** <script>alert(1)</script> ![x](http://evil.example/x.png)"},
    )
    assert preview.status_code == 200
    html = preview.content.decode()
    assert "<strong>bold</strong>" in html and "<script" not in html and "<img" not in html

    diff = client.get(
        reverse("annotate:manage_guideline_diff", args=[project.slug]) + "?from=1&to=2"
    ).content.decode()
    assert 'class="diff-del"' in diff and 'class="diff-add"' in diff and "Be fair and kind." in diff

    # The labeler, who acknowledged version 1 while it was current (version 1 can no longer be
    # acknowledged now), must acknowledge the newest version before submitting.
    GuidelineAck.objects.create(guideline=Guideline.objects.get(version=1), user=labeler)
    login(client, labeler)
    assert b"The guidelines changed" in client.get(reverse("annotate:label", args=[project.slug])).content


def test_members_add_refuses_a_username_that_differs_only_in_case(client, pairwise, manager_of):
    """'Alice' when the account 'alice' exists made a second account (with its own password) and gave
    the role to it, not to alice; Django's own user creation form refuses such names too."""
    project, _labeler = pairwise
    login(client, manager_of(project))
    get_user_model().objects.create_user(username="alice", password="pw-for-tests-123")
    url = reverse("annotate:manage_members", args=[project.slug])
    response = client.post(url, {"username": "ALICE", "email": "", "role": "researcher"})
    assert response.status_code == 400
    assert "'alice'" in response.context["form"].errors["username"][0]
    assert list(
        get_user_model().objects.filter(username__iexact="alice").values_list("username", flat=True)
    ) == ["alice"]
    assert not Membership.objects.filter(project=project, role=Role.RESEARCHER).exists()


def test_members_add_creates_account_once_and_deactivate_releases_leases(client, pairwise, manager_of):
    project, labeler = pairwise
    boss = manager_of(project)
    login(client, boss)
    url = reverse("annotate:manage_members", args=[project.slug])
    response = client.post(url, {"username": "newbie", "email": "n@example.org", "role": "labeler"})
    assert response.status_code == 201
    body = response.content.decode()
    assert "Account created for newbie" in body
    password = body.split('id="initial-password">')[1].split("<")[0]
    user = get_user_model().objects.get(username="newbie")
    assert len(password) >= 12 and user.check_password(password)
    assert Membership.objects.filter(user=user, project=project, role=Role.LABELER, is_active=True).exists()
    assert AuditEvent.objects.filter(action="membership.add", details__username="newbie").exists()
    assert password not in client.get(url).content.decode()  # shown once

    # An existing account gets the role, no password.
    response = client.post(url, {"username": labeler.username, "role": "researcher"})
    assert response.status_code == 302
    response = client.post(url, {"username": labeler.username, "role": "labeler"})
    assert response.status_code == 400 and b"already a labeler" in response.content

    lease = task_claim_next(project=project, labeler=labeler)
    membership = Membership.objects.get(user=labeler, role=Role.LABELER)
    response = client.post(reverse("annotate:manage_member_deactivate", args=[project.slug, membership.pk]))
    assert response.status_code == 302
    membership.refresh_from_db()
    lease.refresh_from_db()
    assert not membership.is_active and lease.state == AssignmentState.RELEASED
    event = AuditEvent.objects.get(action="membership.deactivate")
    assert event.details["leases_released"] == 1 and event.actor == boss

    own = Membership.objects.get(user=boss, role=Role.MANAGER)
    client.post(reverse("annotate:manage_member_deactivate", args=[project.slug, own.pk]))
    own.refresh_from_db()
    assert own.is_active  # a manager cannot lock themselves out

    client.post(reverse("annotate:manage_member_reactivate", args=[project.slug, membership.pk]))
    membership.refresh_from_db()
    assert membership.is_active
    assert AuditEvent.objects.filter(action="membership.reactivate").exists()


def _jsonl(*lines) -> bytes:
    return "\n".join(json.dumps(line) if not isinstance(line, str) else line for line in lines).encode()


def test_import_page_reports_bad_lines_and_imports_good_files(client, pairwise, manager_of):
    project, _ = pairwise
    login(client, manager_of(project))
    url = reverse("annotate:manage_import", args=[project.slug])
    bad = _jsonl({"id": "n1", "prompt": "Hi", "candidates": ["a", "b"]}, "{oops", {"id": "n3"})
    response = client.post(url, {"format": "auto", "file": SimpleUploadedFile("bad.jsonl", bad)})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Nothing was imported" in body and "not valid JSON" in body
    assert '<td class="num">2</td>' in body and '<td class="num">3</td>' in body
    tasks_before = project.tasks.count()
    assert project.tasks.count() == tasks_before

    good = _jsonl(
        {"id": "g1", "prompt": "Hi", "candidates": ["a", "b"]},
        {"id": "g2", "prompt": "Yo", "candidates": ["c", "d"]},
    )
    response = client.post(url, {"format": "jsonl", "file": SimpleUploadedFile("good.jsonl", good)})
    assert response.status_code == 200
    assert project.tasks.count() == tasks_before + 2
    event = AuditEvent.objects.get(action="prompts.import")
    assert event.details["prompts"] == 2 and event.details["filename"] == "good.jsonl"


def test_import_refuses_files_over_the_limit(client, pairwise, manager_of, settings):
    project, _ = pairwise
    settings.PREFHUB_MAX_IMPORT_BYTES = 100
    login(client, manager_of(project))
    big = _jsonl(*[{"id": f"x{i}", "prompt": "Hello there", "candidates": ["a", "b"]} for i in range(20)])
    response = client.post(
        reverse("annotate:manage_import", args=[project.slug]),
        {"format": "auto", "file": SimpleUploadedFile("big.jsonl", big)},
    )
    assert response.status_code == 413
    assert b"too large" in response.content and b"100 bytes" in response.content
    assert not project.prompts.filter(external_id__startswith="x").exists()


def test_audit_page_lists_events(client, pairwise, manager_of):
    project, _ = pairwise
    boss = manager_of(project)
    login(client, boss)
    client.post(
        reverse("annotate:manage_guidelines", args=[project.slug]), {"body": "Rules", "change_note": "v1"}
    )
    body = client.get(reverse("annotate:manage_audit", args=[project.slug])).content.decode()
    assert "guideline.publish" in body and "boss" in body


def test_the_page_and_the_api_validate_a_submit_the_same_way(make_project, labeler_in):
    """One protocol (annotate.labeling_protocol) for the labeling page and the DRF labeling API: the
    same bad submission gets the same status and field from both, and nothing is written."""
    from django.test import Client
    from rest_framework.test import APIClient

    project = make_project(kind=TaskKind.RANKING, ranking_k=3, allow_rank_ties=True)
    add_tasks(project, prompts=2, candidates_per_prompt=3)
    alice = labeler_in(project)
    page, api = Client(), APIClient()
    page.force_login(alice)
    api.force_authenticate(alice)
    first = task_claim_next(project=project, labeler=alice)
    second = task_claim_next(project=project, labeler=alice, exclude_assignment_ids=[first.pk])
    candidate_ids = list(first.shown_order)
    bad_bodies = [
        {"ranking": [[i] for i in sorted(candidate_ids)]},  # candidate ids are not handles
        {"ranking": [[0], [1], [2]], "flagged": "maybe"},
        {"ranking": [[0], [1], [2]], "time_spent_ms": -5},
        {"ranking": [[0], [1], [2]], "rationale": "x" * 10_001},
        {"ranking": "0,1,2"},
    ]
    for body in bad_bodies:
        from_page = post_json(page, reverse("annotate:label_submit", args=[project.slug, first.pk]), body)
        from_api = api.post(f"/api/v1/labeling/assignments/{second.pk}/submit", body, format="json")
        assert from_page.status_code == from_api.status_code == 400, (
            body,
            from_page.content,
            from_api.content,
        )
        assert from_page.json()["field"] == from_api.json()["field"], body
    assert not Annotation.objects.exists()
    ok = post_json(
        page, reverse("annotate:label_submit", args=[project.slug, first.pk]), {"ranking": [[2], [0, 1]]}
    )
    assert ok.status_code == 200, ok.content
    shown = Assignment.objects.get(pk=first.pk).shown_order
    assert Annotation.objects.get().ranking == [[shown[2]], [shown[0], shown[1]]]


def test_password_form_pages_render_their_heading_and_a_form(client, make_user):
    """Change, reset and reset-confirm share one form body (registration/_password_form.html)."""
    reset = client.get(reverse("account:password_reset")).content.decode()
    assert "<h1>Reset your password</h1>" in reset
    assert '<button type="submit" class="btn btn-primary">Reset your password</button>' in reset
    bad_link = client.get(reverse("account:password_reset_confirm", args=["xx", "bad-token"]))
    body = bad_link.content.decode()
    assert "<h1>Choose a new password</h1>" in body and "This reset link is invalid" in body
    assert "<form" not in body
    client.force_login(make_user("pw-changer"))
    change = client.get(reverse("account:password_change")).content.decode()
    assert "<h1>Change your password</h1>" in change
    assert '<button type="submit" class="btn btn-primary">Change your password</button>' in change
    assert 'name="old_password"' in change


def test_text_that_cannot_be_stored_in_the_page_json_is_a_400(client, pairwise):
    """The labeling page's JSON endpoints parse the body the same way as the API: a NUL or an
    unpaired surrogate in a rationale or a skip reason is a 400, and nothing is written."""
    project, labeler = pairwise
    login(client, labeler)
    lease = task_claim_next(project=project, labeler=labeler)
    submit = reverse("annotate:label_submit", args=[project.slug, lease.pk])
    skip = reverse("annotate:label_skip", args=[project.slug, lease.pk])
    for url, raw, word in (
        (submit, '{"choice": "tie", "rationale": "a\\ud800b"}', "surrogate"),
        (submit, '{"choice": "tie", "rationale": "a\\u0000b"}', "NUL"),
        (skip, '{"reason": "\\udfff"}', "surrogate"),
    ):
        response = client.post(url, raw, content_type="application/json")
        assert response.status_code == 400, response.content
        assert word in response.json()["detail"]
    assert not Annotation.objects.exists()
    lease.refresh_from_db()
    assert lease.state == AssignmentState.LIVE


# --- rating dimensions: the limits of the service, on both pages ----------------------------------

NEW_PROJECT = {"kind": "pairwise", "overlap": "1", "lease_minutes": "15", "rating_scale_max": "5"}


@pytest.mark.parametrize(
    "dimensions, message",
    [
        # two names whose keys (their first 40 letters) are the same: was an IntegrityError (500)
        ("a" * 50 + "x\n" + "a" * 50 + "y", "rename one"),
        ("\n".join(f"Dimension {i}" for i in range(21)), "20 rating dimensions at most"),
        ("L" * 81, "80 characters"),  # was cut to 80 without a word
        ("Helpfulness: " + "d" * 2001, "2000 characters"),  # was cut to 2000 without a word
    ],
)
def test_new_project_page_refuses_dimensions_beyond_the_limits(client, make_user, dimensions, message):
    login(client, make_user(is_staff=True))
    response = client.post("/projects/new/", {**NEW_PROJECT, "name": "Dims", "dimensions": dimensions})
    assert response.status_code == 400
    assert message in response.context["form"].errors["dimensions"][0]
    from annotate.models import Project

    assert not Project.objects.filter(slug="dims").exists()


def test_settings_page_refuses_two_dimensions_with_one_key(client, make_project, manager_of):
    """Labels that differ only after the 40th letter derive the same key: the second silently
    overwrote the first (one dimension lost); now the form comes back with the reason."""
    project = make_project(name="Keys", dimensions=[{"label": "Helpfulness"}])
    login(client, manager_of(project))
    form = {
        "name": "Keys",
        "overlap": "1",
        "lease_ttl_minutes": "15",
        "rating_scale_max": "5",
        "dim-TOTAL_FORMS": "2",
        "dim-INITIAL_FORMS": "0",
        "dim-0-label": "b" * 45 + "x",
        "dim-1-label": "b" * 45 + "y",
    }
    response = client.post(reverse("annotate:manage_settings", args=[project.slug]), form)
    assert response.status_code == 400  # the form again, with the reason (was 200)
    assert "rename one" in str(response.context["form"].non_field_errors())
    assert [d.key for d in project.dimensions.all()] == ["helpfulness"]
