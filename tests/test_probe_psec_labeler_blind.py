"""Penetration probe (psec): labelers label blind. Everything a labeler can read (the labeling
page, its JSON, the labeling API, guidelines, the project API) never names the model behind a
response, another labeler's label or rationale, or an AI judge's model."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotate.models import Annotation, Candidate
from annotate.services.leasing import task_claim_next
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db

MODEL = "zz-secret-model-name"
OTHERS = "zz-another-labelers-rationale"


def test_nothing_a_labeler_reads_names_the_models_or_others_labels(make_project, labeler_in):
    project = make_project(overlap=2)
    add_tasks(project, prompts=2)
    Candidate.objects.filter(prompt__project=project).update(model_name=MODEL)
    other = labeler_in(project)
    lease = task_claim_next(project=project, labeler=other)
    Annotation.objects.create(task=lease.task, labeler=other, choice="a", rationale=OTHERS)
    alice = labeler_in(project)
    client = APIClient()
    client.force_login(alice)
    slug = project.slug
    bodies = []
    for path in (
        f"/projects/{slug}/label/",
        f"/projects/{slug}/guidelines/",
        f"/projects/{slug}/guidelines/current.json",
        f"/api/v1/projects/{slug}/",
        f"/api/v1/projects/{slug}/guidelines/",
        "/",
    ):
        resp = client.get(path)
        assert resp.status_code == 200, (path, resp.status_code)
        bodies.append((path, resp.content.decode()))
    for path in (f"/projects/{slug}/label/next/", f"/api/v1/labeling/{slug}/next"):
        resp = client.post(path, {}, format="json")
        assert resp.status_code == 200, (path, resp.status_code, resp.content)
        bodies.append((path, resp.content.decode()))
    assert all("Answer " in body for _, body in bodies[-2:])  # the control: a task was shown
    for path, body in bodies:
        assert MODEL not in body, path
        assert OTHERS not in body, path
