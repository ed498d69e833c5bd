"""A judgment a manager has reviewed can no longer be undone by its labeler.

Before: while the lease was still live, the labeler's undo deleted the judgment and, with it, the
manager's verdict (the review row went with the judgment, no audit event said so): a rejection
"careless" vanished, the labeler answered again and the new answer counted unreviewed. After: the
undo answers 409 ``judgment_reviewed`` with a message and changes nothing; a review and an undo at
the same moment are one after the other (the review locks the judgment): the undo then either
finds the verdict and refuses, or removes the judgment first and the review answers 404.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from annotate.errors import Conflict, NotFound
from annotate.models import Annotation, AnnotationReview, Assignment, AssignmentState
from annotate.services.leasing import annotation_submit, annotation_undo, task_claim_next
from annotate.services.review import annotation_review

pytestmark = pytest.mark.django_db


def _submitted(labelers_on, labeler_in):
    project, alice = labelers_on(1, prompts=2, lease_ttl_seconds=600)
    manager = labeler_in(project, "boss", role="manager")
    lease = task_claim_next(project=project, labeler=alice)
    ann, _ = annotation_submit(assignment_id=lease.pk, labeler=alice, choice="left")
    return project, alice, manager, lease, ann


@pytest.mark.parametrize("verdict", ["rejected", "accepted"])
def test_an_undo_of_a_reviewed_judgment_is_refused_and_the_verdict_kept(labelers_on, labeler_in, verdict):
    project, alice, manager, lease, ann = _submitted(labelers_on, labeler_in)
    annotation_review(
        actor=manager, project=project, annotation_id=ann.pk, verdict=verdict, reason="careless"
    )
    with pytest.raises(Conflict) as exc:
        annotation_undo(assignment_id=lease.pk, labeler=alice, now=timezone.now() + timedelta(seconds=5))
    assert exc.value.code == "judgment_reviewed"
    assert "reviewed" in exc.value.message
    assert AnnotationReview.objects.get(annotation_id=ann.pk).verdict == verdict
    assert Assignment.objects.get(pk=lease.pk).state == AssignmentState.SUBMITTED


def test_the_labeling_page_says_why_the_undo_is_refused(client, labelers_on, labeler_in):
    project, alice, manager, lease, ann = _submitted(labelers_on, labeler_in)
    annotation_review(actor=manager, project=project, annotation_id=ann.pk, verdict="rejected", reason="x")
    client.force_login(alice)
    response = client.post(
        reverse("annotate:label_undo", args=[project.slug, lease.pk]), "{}", content_type="application/json"
    )
    assert response.status_code == 409
    assert "reviewed" in json.loads(response.content)["detail"]
    assert Annotation.objects.filter(pk=ann.pk).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_review_racing_an_undo_is_never_lost_nor_a_500(labelers_on, labeler_in):
    project, alice, manager, lease, ann = _submitted(labelers_on, labeler_in)
    barrier = threading.Barrier(2)
    outcome: dict = {}

    def review():
        barrier.wait()
        try:
            annotation_review(
                actor=manager, project=project, annotation_id=ann.pk, verdict="rejected", reason="careless"
            )
            outcome["review"] = "saved"
        except NotFound:
            outcome["review"] = "gone"
        finally:
            connection.close()

    def undo():
        barrier.wait()
        try:
            annotation_undo(assignment_id=lease.pk, labeler=alice)
            outcome["undo"] = "undone"
        except Conflict:
            outcome["undo"] = "refused"
        finally:
            connection.close()

    threads = [threading.Thread(target=review), threading.Thread(target=undo)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcome in ({"review": "saved", "undo": "refused"}, {"review": "gone", "undo": "undone"})
    if outcome["review"] == "saved":
        assert AnnotationReview.objects.filter(annotation_id=ann.pk, verdict="rejected").exists()
    else:
        assert not Annotation.objects.filter(pk=ann.pk).exists()
