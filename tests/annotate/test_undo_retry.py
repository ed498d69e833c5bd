"""An undo whose answer was lost can be sent again: the task is open for the labeler either way.

Before: the labeling page sends the undo, the server reopens the task, and the answer never reaches
the page (a dropped connection). The page keeps the submission as undoable, the labeler presses
Backspace again, and the second undo answered 409 "Only a submitted task can be undone.": the page
said the undo failed, while the task was open on the server, leased to the labeler and shown
nowhere. Now an undo of a lease that is live already answers as the first did (the task is open on
this lease until it ends, and the leases the first undo gave back are named again); a released
lease, a skipped one or one that has ended still answers 409.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from annotate.errors import LeaseExpired, LeaseNotLive
from annotate.models import Annotation, AssignmentState
from annotate.services.leasing import annotation_submit, annotation_undo, assignment_skip, task_claim_next

pytestmark = pytest.mark.django_db


def test_a_second_undo_of_the_same_submission_answers_as_the_first(labelers_on):
    project, alice = labelers_on(1, prompts=2, lease_ttl_seconds=60)
    now = timezone.now()
    lease = task_claim_next(project=project, labeler=alice, now=now)
    annotation_submit(assignment_id=lease.pk, labeler=alice, choice="left", now=now)
    first = annotation_undo(assignment_id=lease.pk, labeler=alice, now=now + timedelta(seconds=5))
    again = annotation_undo(assignment_id=lease.pk, labeler=alice, now=now + timedelta(seconds=6))
    assert again.assignment.pk == first.assignment.pk and again.assignment.state == AssignmentState.LIVE
    assert again.assignment.expires_at == first.assignment.expires_at  # the lease is not lengthened
    assert again.released_assignment_ids == []
    assert Annotation.objects.count() == 0
    # and the labeler can answer it again, once
    _, created = annotation_submit(
        assignment_id=lease.pk, labeler=alice, choice="right", now=now + timedelta(seconds=7)
    )
    assert created and Annotation.objects.count() == 1


def test_an_undo_of_a_lease_that_ended_or_was_skipped_still_answers_409(labelers_on):
    project, alice = labelers_on(1, prompts=2, lease_ttl_seconds=60)
    now = timezone.now()
    lease = task_claim_next(project=project, labeler=alice, now=now)
    with pytest.raises(LeaseExpired):  # live but past its end: nothing to reopen
        annotation_undo(assignment_id=lease.pk, labeler=alice, now=now + timedelta(seconds=61))
    assignment_skip(assignment_id=lease.pk, labeler=alice, reason="not my language", now=now)
    with pytest.raises(LeaseNotLive):
        annotation_undo(assignment_id=lease.pk, labeler=alice, now=now + timedelta(seconds=1))


def test_the_labeling_page_retry_gets_the_task_back(client, labelers_on):
    project, alice = labelers_on(1, prompts=2, lease_ttl_seconds=600)
    client.force_login(alice)
    lease = task_claim_next(project=project, labeler=alice)
    annotation_submit(assignment_id=lease.pk, labeler=alice, choice="left")
    url = reverse("annotate:label_undo", args=[project.slug, lease.pk])
    first = client.post(url, data=json.dumps({}), content_type="application/json")
    retry = client.post(url, data=json.dumps({}), content_type="application/json")
    assert first.status_code == 200 and retry.status_code == 200, retry.content
    assert retry.json()["ok"] is True and retry.json()["expires_at"] == first.json()["expires_at"]
    assert retry.json()["progress"] == first.json()["progress"]


def test_the_api_retry_answers_200(labelers_on):
    project, alice = labelers_on(1, prompts=2, lease_ttl_seconds=600)
    api = APIClient()
    api.force_authenticate(alice)
    lease = task_claim_next(project=project, labeler=alice)
    annotation_submit(assignment_id=lease.pk, labeler=alice, choice="left")
    url = f"/api/v1/labeling/assignments/{lease.pk}/undo"
    assert api.post(url).status_code == 200
    retry = api.post(url)
    assert retry.status_code == 200, retry.content
    assert retry.json() == {"assignment_id": lease.pk, "state": "live", "released_assignment_ids": []}


def test_a_retry_at_the_cap_names_the_lease_the_first_undo_gave_back(labelers_on):
    project, alice = labelers_on(1, prompts=4, overlap=1, lease_ttl_seconds=600)
    now = timezone.now()
    a = task_claim_next(project=project, labeler=alice, now=now)
    b = task_claim_next(project=project, labeler=alice, now=now, exclude_assignment_ids=[a.pk])
    annotation_submit(assignment_id=a.pk, labeler=alice, choice="left", now=now)
    c = task_claim_next(project=project, labeler=alice, now=now, exclude_assignment_ids=[b.pk])
    first = annotation_undo(assignment_id=a.pk, labeler=alice, now=now + timedelta(seconds=2))
    assert first.released_assignment_ids == [c.pk]
    again = annotation_undo(assignment_id=a.pk, labeler=alice, now=now + timedelta(seconds=3))
    assert again.released_assignment_ids == [c.pk]
    # submitted and undone once more, with b the only other lease: nothing more to give back
    annotation_submit(assignment_id=a.pk, labeler=alice, choice="right", now=now + timedelta(seconds=4))
    assert (
        annotation_undo(
            assignment_id=a.pk, labeler=alice, now=now + timedelta(seconds=5)
        ).released_assignment_ids
        == []
    )
