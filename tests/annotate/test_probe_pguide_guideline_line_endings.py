"""Guidelines are stored with plain newlines whichever way they are published, so an unchanged text
is refused as unchanged.

Before: only the guidelines page's form turned the browser's CRLF line ends into newlines. The
new-project page (guidelines version 1) and the API stored CRLF as sent, so a manager who opened
the guidelines page of a project started with guidelines and pressed Publish without changing a
thing published version 2 (its text differed from version 1 only in its line ends): every labeler
had to acknowledge it again, and the diff said "These two versions are identical". The API
likewise published a CRLF copy of the current LF text as a new version. Now: ``guideline_publish``
(the one home of the rule) stores newlines only and compares texts so, and the unchanged text is
refused ("the same as the current version") wherever it comes from.
"""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from annotate.models import Guideline, Role
from annotate.services.guidelines import guideline_publish

pytestmark = pytest.mark.django_db

CRLF = "# Rules\r\n\r\nBe kind.\r\nBe brief."
LF = "# Rules\n\nBe kind.\nBe brief."


def test_first_version_from_the_new_project_page_is_stored_with_newlines(make_user):
    boss = make_user("boss", is_staff=True)
    client = Client()
    client.force_login(boss)
    resp = client.post(
        "/projects/new/",
        {"name": "Team", "kind": "pairwise", "overlap": 1, "lease_minutes": 15, "rating_scale_max": 5,
         "ranking_k": 4, "guidelines": CRLF},
    )  # fmt: skip
    assert resp.status_code == 302
    assert list(Guideline.objects.values_list("version", "body")) == [(1, LF)]
    # Publish pressed on the guidelines page without a change (the browser sends CRLF): refused
    resp = client.post("/projects/team/manage/guidelines/", {"body": CRLF, "change_note": ""})
    assert resp.status_code == 400
    assert "same as the current version" in resp.content.decode()
    assert Guideline.objects.count() == 1


def test_api_refuses_a_crlf_copy_of_the_current_version(make_project, labeler_in):
    project = make_project(name="Team")
    manager = labeler_in(project, role=Role.MANAGER)
    guideline_publish(project=project, actor=manager, body=LF)
    api = APIClient()
    api.force_authenticate(manager)
    resp = api.post(f"/api/v1/projects/{project.slug}/guidelines/", {"body": CRLF}, format="json")
    assert resp.status_code == 400 and resp.json()["field"] == "body"
    assert Guideline.objects.count() == 1


def test_service_stores_newlines_and_compares_with_an_older_crlf_version(make_project, labeler_in):
    project = make_project(name="Team")
    manager = labeler_in(project, role=Role.MANAGER)
    # a version stored with CRLF before this fix
    Guideline.objects.create(project=project, version=1, body=CRLF, author=manager)
    with pytest.raises(Exception, match="same as the current version"):
        guideline_publish(project=project, actor=manager, body=LF)
    v2 = guideline_publish(project=project, actor=manager, body=CRLF + "\r\nBe fair.\rThanks.")
    assert v2.body == LF + "\nBe fair.\nThanks."
