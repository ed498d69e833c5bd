"""Probe (labeling protocol, rankings): a ranking with an empty group is refused with a message that
says so, on the labeling API and the labeling page.

Before: ``{"ranking": [[0], [], [1], [2]]}`` answered 400 "ranking entries must be candidate ids."
(a client sends handles, never candidate ids, and every entry it sent was a valid handle). Now the
answer names the empty group (and handles); nothing is written, and the lease can still be
submitted with a good ranking."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import Annotation, TaskKind
from annotate.services.leasing import task_claim_next
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db

BAD = [[[0], [], [1], [2]], [[], [0, 1, 2]], [[0], [1], [2], []]]


def _submit(via, project, labeler, lease, ranking):
    """Submit ``ranking`` through the labeling API or the labeling page; (status, body)."""
    if via == "api":
        cache.clear()  # the submit rate limit
        api = APIClient()
        api.force_authenticate(labeler)
        resp = api.post(
            f"/api/v1/labeling/assignments/{lease.pk}/submit", {"ranking": ranking}, format="json"
        )
    else:
        client = Client()
        client.force_login(labeler)
        url = reverse("annotate:label_submit", args=[project.slug, lease.pk])
        resp = client.post(url, data=json.dumps({"ranking": ranking}), content_type="application/json")
    return resp.status_code, resp.json()


@pytest.mark.parametrize("via", ["api", "page"])
@pytest.mark.parametrize("ranking", BAD)
def test_an_empty_group_is_named(make_project, labeler_in, via, ranking):
    project = make_project(kind=TaskKind.RANKING, ranking_k=3, allow_rank_ties=True)
    add_tasks(project, prompts=1, candidates_per_prompt=3)
    labeler = labeler_in(project)
    lease = task_claim_next(project=project, labeler=labeler)
    status, body = _submit(via, project, labeler, lease, ranking)
    assert status == 400 and body["field"] == "ranking", body
    assert "empty group" in body["detail"] and "handle" in body["detail"]
    assert not Annotation.objects.exists()
    status, _ = _submit(via, project, labeler, lease, [[2], [0, 1]])
    assert status in (200, 201) and Annotation.objects.count() == 1
