"""Undo never leaves a labeler above the live-lease cap (the task on screen plus one prefetched).

Before: undoing the last submission while the next task was on screen and another one prefetched
turned the undone lease live again beside both, three live leases (the labeling page showed them
one after another, the third on a lease the cap does not allow). Now the undo gives the newest
lease (the prefetched one the labeler has not reached) back to the pool in the same transaction,
audits it, and says which one it gave back (service, REST API and labeling page endpoint)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from annotate.errors import LeaseNotLive
from annotate.models import Annotation, Assignment, AssignmentState, AuditEvent, Task
from annotate.services.leasing import (
    MAX_LIVE_LEASES_PER_LABELER,
    annotation_submit,
    annotation_undo,
    assignment_skip,
    task_claim_next,
)

pytestmark = pytest.mark.django_db


def _live(labeler, now):
    return Assignment.objects.filter(labeler=labeler, state=AssignmentState.LIVE, expires_at__gt=now)


def _submitted_with_two_more_held(project, alice, now):
    """What the labeling page does: task A on screen, B prefetched; A submitted, B comes on screen
    and C is prefetched behind it. Returns the three leases."""
    a = task_claim_next(project=project, labeler=alice, now=now)
    b = task_claim_next(
        project=project, labeler=alice, exclude_assignment_ids=[a.pk], now=now + timedelta(seconds=1)
    )
    annotation_submit(assignment_id=a.pk, labeler=alice, choice="left", now=now + timedelta(seconds=2))
    c = task_claim_next(
        project=project, labeler=alice, exclude_assignment_ids=[b.pk], now=now + timedelta(seconds=3)
    )
    assert len({a.task_id, b.task_id, c.task_id}) == 3
    return a, b, c


def test_undo_at_the_cap_gives_the_prefetched_lease_back_to_the_pool(labelers_on):
    project, alice, bob = labelers_on(2, prompts=3, overlap=1, lease_ttl_seconds=600)
    now = timezone.now()
    a, b, c = _submitted_with_two_more_held(project, alice, now)
    later = now + timedelta(seconds=4)

    undone = annotation_undo(assignment_id=a.pk, labeler=alice, now=later)

    live = set(_live(alice, later).values_list("pk", flat=True))
    assert live == {a.pk, b.pk}  # the undone task and the one on screen; never three
    assert len(live) <= MAX_LIVE_LEASES_PER_LABELER
    assert undone.assignment.pk == a.pk and undone.assignment.state == AssignmentState.LIVE
    assert undone.released_assignment_ids == [c.pk]
    released = Assignment.objects.get(pk=c.pk)
    assert released.state == AssignmentState.RELEASED and released.finished_at == later
    assert Task.objects.get(pk=c.task_id).claims == 0
    assert not Annotation.objects.filter(assignment=a).exists()
    event = AuditEvent.objects.get(action="assignment.release")
    assert event.actor_id == alice.pk and event.project_id == project.pk
    assert event.target_type == "annotate.assignment" and event.target_id == str(c.pk)
    assert event.details == {"reason": "undo", "undone_assignment_id": a.pk, "task_id": c.task_id}
    # the released task is free for someone else at once
    assert task_claim_next(project=project, labeler=bob, now=later).task_id == c.task_id
    # and alice's own next claim returns a lease she holds, not a third one
    again = task_claim_next(project=project, labeler=alice, exclude_assignment_ids=[a.pk, b.pk], now=later)
    assert again is None
    assert _live(alice, later).count() == 2


def test_undo_below_the_cap_releases_nothing(labelers_on):
    project, alice = labelers_on(1, prompts=3, overlap=1, lease_ttl_seconds=600)
    now = timezone.now()
    a = task_claim_next(project=project, labeler=alice, now=now)
    b = task_claim_next(project=project, labeler=alice, exclude_assignment_ids=[a.pk], now=now)
    annotation_submit(assignment_id=a.pk, labeler=alice, choice="left", now=now)
    undone = annotation_undo(assignment_id=a.pk, labeler=alice, now=now + timedelta(seconds=1))
    assert undone.released_assignment_ids == []
    assert set(_live(alice, now).values_list("pk", flat=True)) == {a.pk, b.pk}
    assert not AuditEvent.objects.filter(action="assignment.release").exists()


def test_an_undo_that_changes_nothing_releases_nothing(labelers_on):
    """An undo of a lease that is live already (a retry, ``test_undo_retry``) or of one that was
    skipped (refused) leaves the other leases alone."""
    project, alice = labelers_on(1, prompts=4, overlap=1, lease_ttl_seconds=600)
    now = timezone.now()
    _a, b, c = _submitted_with_two_more_held(project, alice, now)
    undone = annotation_undo(assignment_id=b.pk, labeler=alice, now=now + timedelta(seconds=4))
    assert undone.released_assignment_ids == []
    assert set(_live(alice, now).values_list("pk", flat=True)) == {b.pk, c.pk}
    assignment_skip(assignment_id=c.pk, labeler=alice, reason="unreadable", now=now + timedelta(seconds=5))
    with pytest.raises(LeaseNotLive):
        annotation_undo(assignment_id=c.pk, labeler=alice, now=now + timedelta(seconds=6))
    assert set(_live(alice, now).values_list("pk", flat=True)) == {b.pk}
    assert not AuditEvent.objects.filter(action="assignment.release").exists()


def test_rest_api_undo_names_the_released_lease(labelers_on):
    cache.clear()
    project, alice = labelers_on(1, prompts=3, overlap=1, lease_ttl_seconds=600)
    api = APIClient()
    api.force_authenticate(alice)
    next_url = f"/api/v1/labeling/{project.slug}/next"
    a = api.post(next_url, {}, format="json").json()["assignment_id"]
    b = api.post(next_url, {"exclude_assignment_ids": [a]}, format="json").json()["assignment_id"]
    assert (
        api.post(f"/api/v1/labeling/assignments/{a}/submit", {"choice": "left"}, format="json").status_code
        == 201
    )
    c = api.post(next_url, {"exclude_assignment_ids": [b]}, format="json").json()["assignment_id"]

    resp = api.post(f"/api/v1/labeling/assignments/{a}/undo")

    assert resp.status_code == 200, resp.content
    assert _live(alice, timezone.now()).count() == 2
    assert resp.json() == {"assignment_id": a, "state": "live", "released_assignment_ids": [c]}
    # the client holds the cap again: a further claim is the documented 409, not a third lease
    full = api.post(next_url, {"exclude_assignment_ids": [a, b]}, format="json")
    assert full.status_code == 409 and full.json()["error"] == "lease_limit"


def test_labeling_page_undo_names_the_released_lease(client, labelers_on):
    project, alice = labelers_on(1, prompts=3, overlap=1, lease_ttl_seconds=600)
    client.force_login(alice)
    now = timezone.now()
    a, b, c = _submitted_with_two_more_held(project, alice, now)
    resp = client.post(
        reverse("annotate:label_undo", args=[project.slug, a.pk]),
        data=json.dumps({}),
        content_type="application/json",
    )
    assert resp.status_code == 200, resp.content
    assert resp.json()["released_assignment_ids"] == [c.pk]
    assert set(_live(alice, timezone.now()).values_list("pk", flat=True)) == {a.pk, b.pk}
