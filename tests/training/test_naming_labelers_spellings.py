"""Probe of ``project_people_ids`` (the one rule for naming labelers): two spellings of one user id
("5" and "05", as a careless researcher types them) both name that user. Before, the second
spelling overwrote the first in the id lookup and was refused as "Not labelers of this project"."""

from __future__ import annotations

import pytest

from annotate.selectors import project_people_ids
from tests.conftest import bearer

pytestmark = pytest.mark.django_db


def test_two_spellings_of_one_id_name_the_same_labeler(make_project, labeler_in):
    project = make_project()
    alice = labeler_in(project, "alice")
    assert project_people_ids(project=project, names=f"{alice.pk},0{alice.pk}") == [alice.pk]
    assert project_people_ids(project=project, names=[alice.pk, f"0{alice.pk}", "alice"]) == [alice.pk]


def test_the_export_api_takes_them_too(make_project, labeler_in):
    project = make_project()
    alice = labeler_in(project, "alice")
    researcher = labeler_in(project, "rita", role="researcher")
    resp = bearer(researcher).post(
        f"/api/v1/projects/{project.slug}/exports/",
        {"format": "trl", "options": {"labelers_exclude": [alice.pk, f"00{alice.pk}"]}},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    assert resp.json()["options"]["labelers_exclude"] == [alice.pk]


def test_a_json_number_is_a_user_id_never_a_username(make_project, labeler_in):
    """The export API took ids (JSON numbers) before it took names: ``[5]`` must not pick the member
    whose username is "5"; the text "5" still may."""
    from annotate.selectors import project_people_ids

    project = make_project()
    someone = labeler_in(project, "someone")
    digits = labeler_in(project, str(someone.pk))  # a member whose username is someone's id
    assert project_people_ids(project=project, names=[someone.pk]) == [someone.pk]
    assert project_people_ids(project=project, names=str(someone.pk)) == [digits.pk]
