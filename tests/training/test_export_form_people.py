"""The export page speaks in usernames and warns about a test split too small to mean anything."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.selectors import project_people_ids
from annotate.services.projects import membership_add
from tests.training.conftest import EXPORT_FORM
from training.models import Export, ExportState
from training.selectors import export_warnings

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(make_project, labeler_in):
    project = make_project()
    researcher = labeler_in(project, "res", role="researcher")
    alice = labeler_in(project, "alice")
    bob = labeler_in(project, "bob")
    return project, researcher, alice, bob


def test_usernames_resolve_to_the_project_s_labelers_only(setup, make_project, make_user):
    project, _, alice, bob = setup
    stranger = make_user("mallory")
    membership_add(project=make_project(), user=stranger, role="labeler")
    assert project_people_ids(project=project, names=["alice", " bob ", "alice"]) == sorted(
        [alice.pk, bob.pk]
    )
    with pytest.raises(Exception) as info:
        project_people_ids(project=project, names=["alice", "mallory", "nobody"])
    assert "mallory" in str(info.value) and "nobody" in str(info.value)


def test_export_form_takes_usernames(client, setup, export_page_options):
    project, researcher, alice, bob = setup
    seen = export_page_options
    client.force_login(researcher)
    url = reverse("training:export_list", args=[project.slug])
    form = EXPORT_FORM
    response = client.post(url, {**form, "labelers_include": "alice, bob", "labelers_exclude": ""})
    assert response.status_code == 302, response.content[:500]
    assert sorted(seen["labelers_include"]) == sorted([alice.pk, bob.pk])
    response = client.post(url, {**form, "labelers_include": "alice, zed"})
    assert response.status_code == 400
    assert b"zed" in response.content


def test_tiny_and_missing_test_splits_are_warned_about(setup):
    project, *_ = setup

    def export(train, test, test_size=0.1):
        return Export(
            project=project,
            version=1,
            state=ExportState.DONE,
            options={"test_size": test_size},
            manifest={"counts": {"train": train, "test": test}},
        )

    assert export_warnings(export=export(900, 100)) == []
    (tiny,) = export_warnings(export=export(95, 5))
    assert "5 rows" in tiny
    (empty,) = export_warnings(export=export(12, 0))
    assert "no test rows" in empty.lower()
    assert export_warnings(export=export(12, 0, test_size=0)) == []  # asked for no test split
