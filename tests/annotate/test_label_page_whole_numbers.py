"""The labeling page's JSON calls take ids as whole numbers only. Before, a number with a fraction
was cut to its whole part: ``{"guideline_id": 1.7}`` acknowledged guideline 1 (200) and
``{"exclude": [1.5]}`` excluded lease 1, where the API's own ack refuses 1.7 with a 400."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from annotate.models import Assignment, GuidelineAck, Role
from annotate.services.guidelines import guideline_publish
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def page(client, make_project, labeler_in):
    project = make_project(name="Pairs")
    add_tasks(project, prompts=2)
    manager = labeler_in(project, role=Role.MANAGER)
    guideline = guideline_publish(project=project, actor=manager, body="Be kind.")
    client.force_login(labeler_in(project))
    return project, guideline


def _post(client, url, body: str):
    return client.post(url, data=body, content_type="application/json")


def test_a_guideline_id_with_a_fraction_is_refused_and_nothing_recorded(client, page):
    project, guideline = page
    url = reverse("annotate:guideline_ack", args=[project.slug])
    resp = _post(client, url, json.dumps({"guideline_id": guideline.pk + 0.7}))
    assert resp.status_code == 400
    assert resp.json() == {
        "error": "invalid",
        "detail": "guideline_id must be a whole number.",
        "field": "guideline_id",
    }
    assert not GuidelineAck.objects.exists()


def test_a_whole_guideline_id_written_as_a_decimal_still_acknowledges(client, page):
    project, guideline = page
    url = reverse("annotate:guideline_ack", args=[project.slug])
    resp = _post(client, url, json.dumps({"guideline_id": float(guideline.pk)}))
    assert resp.status_code == 200 and resp.json()["ok"] is True
    assert GuidelineAck.objects.filter(guideline=guideline).count() == 1


def test_an_excluded_lease_id_with_a_fraction_is_refused(client, page):
    project, _ = page
    resp = _post(client, reverse("annotate:label_next", args=[project.slug]), '{"exclude": [1.5]}')
    assert resp.status_code == 400
    assert resp.json()["field"] == "exclude" and "whole number" in resp.json()["detail"]
    assert not Assignment.objects.exists()
