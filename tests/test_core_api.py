"""core.api: every API error answers one schema, and lists page with bounds."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotate.services.projects import membership_add
from tests.conftest import bearer

pytestmark = pytest.mark.django_db

SCHEMA_KEYS = {"error", "detail", "field", "details"}


def _bearer(user):
    return bearer(user, name="t")


def _is_error(body: dict, code: str) -> bool:
    return body["error"] == code and isinstance(body["detail"], str) and set(body) <= SCHEMA_KEYS


def test_drf_validation_errors_use_the_error_schema(make_project, labeler_in):
    """DRF's own validation errors came back as a bare ``{field: [messages]}`` while service errors
    used ``{"error", "detail", "field"}``: a client had to parse two shapes."""
    project = make_project()
    client = _bearer(labeler_in(project, role="researcher"))
    resp = client.post(f"/api/v1/projects/{project.slug}/exports/", {"format": "nope"}, format="json")
    body = resp.json()
    assert resp.status_code == 400 and _is_error(body, "invalid"), body
    assert body["field"] == "format" and "format" in body["details"]
    assert "not a valid choice" in body["detail"]


def test_authentication_permission_and_not_found_errors_use_the_schema(make_project, labeler_in):
    project = make_project()
    anonymous = APIClient().get("/api/v1/projects/")
    assert anonymous.status_code == 401 and _is_error(anonymous.json(), "not_authenticated")
    assert anonymous.has_header("WWW-Authenticate")
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION="Bearer ph_not-a-token")
    refused = forged.get("/api/v1/projects/")
    assert refused.status_code == 401 and _is_error(refused.json(), "authentication_failed")
    labeler = _bearer(labeler_in(project, role="labeler"))
    forbidden = labeler.get(f"/api/v1/projects/{project.slug}/exports/")
    assert forbidden.status_code == 403 and _is_error(forbidden.json(), "forbidden")
    missing = labeler.get("/api/v1/projects/no-such-project/")
    assert missing.status_code == 404 and _is_error(missing.json(), "not_found")


def test_lists_page_with_bounds(make_project, make_user):
    user = make_user()
    for _ in range(3):
        membership_add(project=make_project(), user=user, role="researcher")
    client = _bearer(user)
    page = client.get("/api/v1/projects/", {"limit": 2}).json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    huge = client.get("/api/v1/projects/", {"limit": 10**6, "offset": 10**30})
    assert huge.status_code == 200 and huge.json()["results"] == []


def test_every_list_endpoint_pages_the_same_way(make_project, labeler_in):
    """Generation lists were capped at 200 with no paging, runs paged by hand: all use core.api now."""
    from generation.models import GenerationJob, ModelEndpoint
    from training.models import TrainingRun

    project = make_project()
    client = _bearer(labeler_in(project, role="researcher"))
    for i in range(3):
        GenerationJob.objects.create(project=project)
        ModelEndpoint.objects.create(name=f"e{i}", backend="transformers", model="/m", project=project)
        TrainingRun.objects.create(project=project, kind="ppo", base_model="tiny")
    for path in ("generation/jobs/", "generation/endpoints/", "runs/", "exports/", "tasks/", "annotations/"):
        body = client.get(f"/api/v1/projects/{project.slug}/{path}", {"limit": 2}).json()
        assert set(body) == {"count", "next", "previous", "results"}, (path, body)
        assert len(body["results"]) <= 2
        if path in ("generation/jobs/", "generation/endpoints/", "runs/"):
            assert body["count"] == 3 and len(body["results"]) == 2 and body["next"], path
