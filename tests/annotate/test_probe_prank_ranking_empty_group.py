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
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import Annotation, TaskKind
from annotate.services.leasing import task_claim_next
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db

BAD = [[[0], [], [1], [2]], [[], [0, 1, 2]], [[0], [1], [2], []]]


@pytest.fixture
def leased(make_project, labeler_in):
    project = make_project(kind=TaskKind.RANKING, ranking_k=3, allow_rank_ties=True)
    add_tasks(project, prompts=1, candidates_per_prompt=3)
    labeler = labeler_in(project)
    return project, labeler, task_claim_next(project=project, labeler=labeler)


@pytest.mark.parametrize("ranking", BAD)
def test_the_api_names_the_empty_group(leased, ranking):
    _project, labeler, lease = leased
    cache.clear()
    api = APIClient()
    api.force_authenticate(labeler)
    url = f"/api/v1/labeling/assignments/{lease.pk}/submit"
    resp = api.post(url, {"ranking": ranking}, format="json")
    assert resp.status_code == 400, resp.content
    body = resp.json()
    assert body["field"] == "ranking" and "empty group" in body["detail"] and "handle" in body["detail"]
    assert not Annotation.objects.exists()
    assert api.post(url, {"ranking": [[2], [0, 1]]}, format="json").status_code == 201


@pytest.mark.parametrize("ranking", BAD)
def test_the_page_names_the_empty_group(leased, client, ranking):
    project, labeler, lease = leased
    client.force_login(labeler)
    resp = client.post(
        reverse("annotate:label_submit", args=[project.slug, lease.pk]),
        data=json.dumps({"ranking": ranking}),
        content_type="application/json",
    )
    assert resp.status_code == 400 and resp.json()["field"] == "ranking", resp.content
    assert "empty group" in resp.json()["detail"]
    assert not Annotation.objects.exists()
