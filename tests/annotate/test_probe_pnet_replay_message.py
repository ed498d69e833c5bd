"""A labeler on a bad network: their submit reached the server but the answer was lost, so they
press Ctrl+Enter again (perhaps after changing their answer). The replay is answered as the first
(nothing written twice), and its message must say what happened to this labeler.

Before: "already been submitted (perhaps in another tab); the first answer was kept": on one tab,
after a lost answer, it pointed at a tab that did not exist and did not say how to put the changed
answer in. Now it names the earlier try and says Backspace undoes it to answer again."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.models import Annotation
from annotate.services.leasing import task_claim_next
from tests.annotate.test_views import login, post_json
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def test_a_replayed_submit_says_the_earlier_try_was_kept_and_how_to_change_it(
    client, make_project, labeler_in
):
    project = make_project(name="Replays")
    add_tasks(project, prompts=2)
    labeler = labeler_in(project, "rio")
    lease = task_claim_next(project=project, labeler=labeler)
    url = reverse("annotate:label_submit", args=[project.slug, lease.pk])
    first = post_json(login(client, labeler), url, {"choice": "left"})
    assert first.status_code == 200 and first.json()["created"] is True
    again = post_json(client, url, {"choice": "right"})  # the labeler changed their mind meanwhile
    assert again.status_code == 200 and again.json()["created"] is False
    message = again.json()["message"]
    assert "earlier try" in message and "Backspace" in message
    assert Annotation.objects.filter(assignment=lease).count() == 1
    assert again.json()["progress"]["done"] == 1
