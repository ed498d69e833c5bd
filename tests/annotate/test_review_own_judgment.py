"""A manager cannot review (accept, reject or restore) a judgment they made themselves.

Before: a user who was both a labeler and a manager of a project could accept their own judgments,
or restore one another manager had rejected, so the rejection stopped leaving it out of exports.
Now the service refuses with a 403 ``own_judgment`` and a message, nothing changes, and the review
page shows no review buttons on the manager's own rows."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.errors import Forbidden
from annotate.models import AnnotationReview, AuditEvent
from annotate.services.leasing import annotation_submit, task_claim_next
from annotate.services.projects import membership_add
from annotate.services.review import annotation_review, annotation_review_clear

pytestmark = pytest.mark.django_db


@pytest.fixture
def own(labelers_on, labeler_in):
    project, _ = labelers_on(1, prompts=2, lease_ttl_seconds=600)
    boss = labeler_in(project, "boss", role="manager")
    membership_add(project=project, user=boss, role="labeler")  # labels too
    other = labeler_in(project, "other-boss", role="manager")
    lease = task_claim_next(project=project, labeler=boss)
    ann, _ = annotation_submit(assignment_id=lease.pk, labeler=boss, choice="left")
    return project, boss, other, ann


@pytest.mark.parametrize("verdict", ["accepted", "rejected"])
def test_reviewing_your_own_judgment_is_refused(own, verdict):
    project, boss, _, ann = own
    events = AuditEvent.objects.count()
    with pytest.raises(Forbidden) as exc:
        annotation_review(actor=boss, project=project, annotation_id=ann.pk, verdict=verdict, reason="fine")
    assert exc.value.code == "own_judgment"
    assert "your own" in exc.value.message
    assert not AnnotationReview.objects.filter(annotation=ann).exists()
    assert AuditEvent.objects.count() == events


def test_restoring_your_own_rejected_judgment_is_refused(own):
    project, boss, other, ann = own
    annotation_review(actor=other, project=project, annotation_id=ann.pk, verdict="rejected", reason="sloppy")
    with pytest.raises(Forbidden):
        annotation_review_clear(actor=boss, project=project, annotation_id=ann.pk)
    assert AnnotationReview.objects.get(annotation=ann).verdict == "rejected"
    assert annotation_review_clear(actor=other, project=project, annotation_id=ann.pk) is True


def test_another_manager_reviews_it(own):
    project, _, other, ann = own
    review = annotation_review(actor=other, project=project, annotation_id=ann.pk, verdict="accepted")
    assert review.reviewer == other


def test_the_review_page_refuses_with_a_message_and_offers_no_buttons_on_own_rows(client, own):
    project, boss, _, ann = own
    client.force_login(boss)
    resp = client.post(
        reverse("review:action", args=[project.slug]),
        {"action": "accept", "annotation": ann.pk},
        follow=True,
    )
    assert resp.status_code == 200
    assert "your own" in resp.content.decode()
    assert not AnnotationReview.objects.filter(annotation=ann).exists()
    page = client.get(reverse("review:queue", args=[project.slug])).content.decode()
    row = page.split(f'id="judgment-{ann.pk}"', 1)[1].split("</tr>", 1)[0]
    assert 'value="accept"' not in row and "Reject" not in row
    assert "Your judgment" in row
