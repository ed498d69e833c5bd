"""Guidelines a reader could not see are refused as empty.

Before: ``guideline_publish`` refused only a body that was empty after ``strip()``, so a body of
zero-width spaces and word joiners (what a copy from a web page or a document can leave behind)
was published as a new version: labelers were stopped and asked to acknowledge a blank page.
Now: the project's one rule for "nothing a reader could see" (``annotate.validation.is_blank``,
as for an empty response) applies, and such a body is "Guidelines cannot be empty." (400 on the
page and the API), with no version published.
"""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from annotate.errors import InvalidInput
from annotate.models import Guideline, Role
from annotate.services.guidelines import guideline_publish

pytestmark = pytest.mark.django_db

INVISIBLE = "\u200b\u2060\n\u200b\ufeff"


@pytest.fixture
def team(make_project, labeler_in):
    project = make_project(name="Team")
    return project, labeler_in(project, role=Role.MANAGER)


def test_service_refuses_an_invisible_body(team):
    project, manager = team
    with pytest.raises(InvalidInput, match="cannot be empty"):
        guideline_publish(project=project, actor=manager, body=INVISIBLE)
    assert not Guideline.objects.exists()


def test_page_and_api_refuse_an_invisible_body(team):
    project, manager = team
    client = Client()
    client.force_login(manager)
    resp = client.post(f"/projects/{project.slug}/manage/guidelines/", {"body": INVISIBLE, "change_note": ""})
    assert resp.status_code == 400 and "cannot be empty" in resp.content.decode()
    api = APIClient()
    api.force_authenticate(manager)
    resp = api.post(f"/api/v1/projects/{project.slug}/guidelines/", {"body": INVISIBLE}, format="json")
    assert resp.status_code == 400 and resp.json()["field"] == "body"
    assert not Guideline.objects.exists()


def test_text_with_a_zero_width_character_in_it_is_still_published(team):
    project, manager = team
    guideline = guideline_publish(project=project, actor=manager, body="Be\u200b kind.")
    assert guideline.version == 1


def test_a_new_project_with_invisible_guidelines_starts_without_guidelines(make_user):
    """As with guidelines of spaces only: the project is made, with no version 1 (it was made with
    an invisible version 1 before)."""
    boss = make_user("boss", is_staff=True)
    api = APIClient()
    api.force_authenticate(boss)
    resp = api.post(
        "/api/v1/projects/", {"name": "Team", "kind": "pairwise", "guidelines": INVISIBLE}, format="json"
    )
    assert resp.status_code == 201
    assert not Guideline.objects.exists()
