"""The labeling page's lease endpoints, when the lease has already ended (a submit or skip whose
answer was lost, then the labeler's next try): the refusal carries the labeler's progress, so
the page's counter follows what the server counted. Before: ``{"error", "detail"}`` only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotate import selectors
from annotate.models import Assignment
from annotate.services.leasing import annotation_submit, assignment_skip, task_claim_next
from tests.annotate.test_views import login, post_json
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("action", ["skip", "submit", "renew"])
def test_a_lease_ended_already_answers_409_with_progress(client, make_project, labeler_in, action):
    project = make_project(name="Progress on refusals")
    add_tasks(project, prompts=3)
    labeler = labeler_in(project, "pia")
    lease = task_claim_next(project=project, labeler=labeler)
    # The work of the request whose answer was lost: a submit (a submit replayed on it is answered
    # as the first, so the submit endpoint is tried on a lease a lost skip ended).
    if action == "submit":
        assignment_skip(assignment_id=lease.pk, labeler=labeler, reason="Not my field")
    else:
        annotation_submit(assignment_id=lease.pk, labeler=labeler, choice="left")
    url = reverse(f"annotate:label_{action}", args=[project.slug, lease.pk])
    body = {"reason": "Not my field"} if action == "skip" else {"choice": "right"}
    response = post_json(login(client, labeler), url, body)
    assert response.status_code == 409
    data = response.json()
    assert data["error"] == "lease_not_live"
    assert data["progress"] == selectors.labeler_progress_bar(project=project, user=labeler)


def test_an_expired_lease_answers_409_with_progress(client, make_project, labeler_in):
    project = make_project(name="Progress on expiry")
    add_tasks(project, prompts=2)
    labeler = labeler_in(project, "pez")
    lease = task_claim_next(project=project, labeler=labeler)
    past = timezone.now() - timedelta(minutes=1)
    Assignment.objects.filter(pk=lease.pk).update(leased_at=past - timedelta(hours=1), expires_at=past)
    url = reverse("annotate:label_submit", args=[project.slug, lease.pk])
    response = post_json(login(client, labeler), url, {"choice": "left"})
    assert response.status_code == 409 and response.json()["error"] == "lease_expired"
    assert response.json()["progress"] == selectors.labeler_progress_bar(project=project, user=labeler)
