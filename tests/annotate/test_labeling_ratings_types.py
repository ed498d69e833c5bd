"""A submit's ``ratings`` is an object, or absent. Before, ``0``, ``false``, ``""`` and ``[]``
were read as "no ratings" (``ratings or {}``), so a client sending the wrong type never learned it;
the imports refuse a false-like value of the wrong type the same way (615c7d7). Now the labeling
API and the labeling page answer 400 naming ``ratings`` and write nothing."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import Annotation
from annotate.services.leasing import task_claim_next
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db

WRONG = [0, False, "", [], 1, "x", [1], None]  # null: the protocol never took it (DRF refused it)


@pytest.fixture
def leased(make_project, labeler_in):
    project = make_project()
    add_tasks(project, prompts=1)
    labeler = labeler_in(project)
    return project, labeler, task_claim_next(project=project, labeler=labeler)


@pytest.mark.parametrize("ratings", WRONG)
def test_the_api_refuses_ratings_of_the_wrong_type(leased, ratings):
    _project, labeler, lease = leased
    cache.clear()
    api = APIClient()
    api.force_authenticate(labeler)
    resp = api.post(
        f"/api/v1/labeling/assignments/{lease.pk}/submit",
        {"choice": "left", "ratings": ratings},
        format="json",
    )
    assert resp.status_code == 400 and resp.json()["field"] == "ratings", resp.content
    assert not Annotation.objects.exists()


@pytest.mark.parametrize("ratings", WRONG)
def test_the_page_refuses_ratings_of_the_wrong_type(leased, client, ratings):
    project, labeler, lease = leased
    client.force_login(labeler)
    resp = client.post(
        reverse("annotate:label_submit", args=[project.slug, lease.pk]),
        data=json.dumps({"choice": "left", "ratings": ratings}),
        content_type="application/json",
    )
    assert resp.status_code == 400 and resp.json()["field"] == "ratings", resp.content
    assert not Annotation.objects.exists()


@pytest.mark.parametrize("body", [{"choice": "left"}, {"choice": "left", "ratings": {}}])
def test_absent_or_empty_ratings_still_submit(leased, client, body):
    project, labeler, lease = leased
    client.force_login(labeler)
    resp = client.post(
        reverse("annotate:label_submit", args=[project.slug, lease.pk]),
        data=json.dumps(body),
        content_type="application/json",
    )
    assert resp.status_code == 200 and Annotation.objects.get().ratings == {}
