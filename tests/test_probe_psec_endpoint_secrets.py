"""Penetration probe (psec): a credential in an endpoint's base URL (``?api-key=...``, as Azure
takes it) is a secret the server keeps: errors scrub it and backups drop it
(``generation.backends.config_without_secrets``). An admin's shared endpoint is listed to the
researchers of every project: neither the endpoints API nor the generation page may show it."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from generation.models import ModelEndpoint

pytestmark = pytest.mark.django_db

SECRET = "Zq9-psec-secret-value"


@pytest.fixture
def shared_endpoint():
    return ModelEndpoint.objects.create(
        name="shared-azure",
        backend="openai",
        model="gpt",
        config={"base_url": f"https://models.example.com/v1?api-version=2024&api-key={SECRET}"},
        project=None,
    )


def test_another_projects_researcher_does_not_read_a_shared_endpoints_key(
    shared_endpoint, make_project, labeler_in
):
    project = make_project()
    researcher = labeler_in(project, role="researcher")
    client = APIClient()
    client.force_login(researcher)
    api = client.get(f"/api/v1/projects/{project.slug}/generation/endpoints/")
    assert api.status_code == 200
    listed = {row["name"]: row for row in api.json()["results"]}
    assert "shared-azure" in listed
    assert SECRET not in api.content.decode()
    assert listed["shared-azure"]["config"]["base_url"].startswith(
        "https://models.example.com/v1?api-version=2024"
    )
    page = client.get(f"/generation/{project.slug}/")
    assert page.status_code == 200
    assert "shared-azure" in page.content.decode()
    assert SECRET not in page.content.decode()
