"""Probe of the REST API with the HTML ``Accept`` a browser or a curious client sends.

DRF renders ``Accept: text/html`` with its browsable API, which asks the view's permission
whether to draw a form for each write method. ``ProjectCreatePermission`` and
``ProjectPermission`` refuse by raising the service's ``Forbidden``/``NotFound``; DRF's renderer
only expects its own ``APIException`` there, so the refusal escaped as a 500 (``Forbidden: You
may not start projects``) for any user who may read but not write: a non-staff user listing
``/api/v1/projects/``, a labeler reading the project's guidelines. The refusals themselves
(403/404 with the error schema) must not change, and nothing may be written."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotate.models import Guideline, Project
from annotate.services.guidelines import guideline_publish

pytestmark = pytest.mark.django_db

HTML = {"HTTP_ACCEPT": "text/html"}


@pytest.fixture
def world(make_project, make_user, labeler_in):
    project = make_project(name="Browsed")
    guideline_publish(project=project, actor=None, body="Be kind.")
    labeler = labeler_in(project)
    return {"project": project, "labeler": labeler, "stranger": make_user()}


def _client(user) -> APIClient:
    client = APIClient(raise_request_exception=False)
    client.force_login(user)
    return client


def test_a_non_staff_user_lists_projects_as_html_not_a_500(world):
    client = _client(world["labeler"])
    resp = client.get("/api/v1/projects/", **HTML)
    assert resp.status_code == 200
    assert resp["Content-Type"].startswith("text/html")
    assert b"browsed" in resp.content


def test_a_labeler_reads_guidelines_as_html_not_a_500(world):
    slug = world["project"].slug
    client = _client(world["labeler"])
    for path in (f"/api/v1/projects/{slug}/guidelines/", f"/api/v1/projects/{slug}/guidelines/1/"):
        resp = client.get(path, **HTML)
        assert resp.status_code == 200, (path, resp.status_code)
        assert resp["Content-Type"].startswith("text/html")


def test_refusals_keep_their_status_and_error_schema(world):
    slug = world["project"].slug
    labeler = _client(world["labeler"])
    resp = labeler.post("/api/v1/projects/", {"name": "Mine"}, format="json")
    assert resp.status_code == 403
    assert resp.json()["error"] == "forbidden"
    assert "You may not start projects" in resp.json()["detail"]
    resp = labeler.post(f"/api/v1/projects/{slug}/guidelines/", {"body": "new rules"}, format="json")
    assert resp.status_code == 403
    assert resp.json()["error"] == "forbidden"
    resp = _client(world["stranger"]).get(f"/api/v1/projects/{slug}/guidelines/")
    assert resp.status_code == 404
    assert resp.json()["error"] == "not_found"
    # the same refusals asked for as HTML are still refusals
    resp = labeler.post("/api/v1/projects/", {"name": "Mine"}, format="json", **HTML)
    assert resp.status_code == 403
    resp = _client(world["stranger"]).get(f"/api/v1/projects/{slug}/guidelines/", **HTML)
    assert resp.status_code == 404
    assert not Project.objects.filter(name="Mine").exists()
    assert Guideline.objects.filter(project=world["project"]).count() == 1


def test_options_tells_a_reader_what_it_may_do_instead_of_refusing(world):
    """DRF's OPTIONS leaves out the write actions a permission refuses; it was a 403 because the
    refusal was not an APIException."""
    slug = world["project"].slug
    resp = _client(world["labeler"]).options(f"/api/v1/projects/{slug}/guidelines/")
    assert resp.status_code == 200
    assert "POST" not in resp.json().get("actions", {})
    resp = _client(world["stranger"]).options(f"/api/v1/projects/{slug}/guidelines/")
    assert resp.status_code == 404
