"""Probe (exports): ``pairing`` on an A/B project is refused unless it is the default, instead of
being accepted and ignored.

Before: an export of a pairwise project with ``pairing=adjacent`` or ``best_vs_rest`` was created
and recorded with that option in its manifest, and its rows were exactly those of ``all_pairs``:
``pairing`` only turns a ranking's groups into pairs, and an A/B task is one pair already. Now the
service (behind the API, the page and the command) answers 400 naming ``pairing``, and writes no
export; the default ``all_pairs`` (which the export page always posts) is still accepted, and a
ranking project takes every pairing."""

from __future__ import annotations

import pytest

from annotate.errors import InvalidInput
from annotate.models import TaskKind
from tests.conftest import add_tasks
from training.models import Export
from training.services.exports import export_create, export_options_validate

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("pairing", ["adjacent", "best_vs_rest"])
def test_a_pairwise_project_refuses_a_pairing(make_project, pairing):
    project = make_project()
    add_tasks(project, prompts=1)
    with pytest.raises(InvalidInput, match="pairing") as exc:
        export_create(
            project=project, format="trl", file_type="jsonl", options={"pairing": pairing}, enqueue=False
        )
    assert exc.value.field == "pairing"
    assert not Export.objects.exists()


def test_the_default_pairing_and_a_ranking_project_still_export(make_project):
    pairwise = make_project()
    assert (
        export_options_validate(
            project=pairwise, format="trl", file_type="jsonl", options={"pairing": "all_pairs"}
        ).pairing
        == "all_pairs"
    )
    ranking = make_project(kind=TaskKind.RANKING, ranking_k=3)
    for pairing in ("all_pairs", "adjacent", "best_vs_rest"):
        opts = export_options_validate(
            project=ranking, format="trl", file_type="jsonl", options={"pairing": pairing}
        )
        assert opts.pairing == pairing


def test_the_api_answers_400_naming_pairing(make_project, make_user):
    from rest_framework.test import APIClient

    project = make_project()
    add_tasks(project, prompts=1)
    client = APIClient()
    client.force_authenticate(make_user(is_superuser=True, is_staff=True))
    resp = client.post(
        f"/api/v1/projects/{project.slug}/exports",
        {"format": "trl", "options": {"pairing": "adjacent"}},
        format="json",
    )
    assert resp.status_code == 400, resp.content
    assert resp.json()["field"] == "pairing" and "pairwise" in resp.json()["detail"]
