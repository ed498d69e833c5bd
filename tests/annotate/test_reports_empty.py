"""A ranking (or pairwise) project with no annotations yet: the report page and every CSV/JSON
download answer 200 with empty tables, not a 500 (issue 12)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.urls import reverse

from annotate.models import TaskKind
from annotate.services import reports
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("kind", [TaskKind.RANKING, TaskKind.PAIRWISE])
@pytest.mark.parametrize("with_tasks", [False, True])
def test_report_page_and_downloads_of_a_project_without_annotations(
    client, make_project, labeler_in, kind, with_tasks
):
    extra = {"ranking_k": 3} if kind == TaskKind.RANKING else {}
    project = make_project(kind=kind, dimensions=["Harmless"], **extra)
    if with_tasks:
        add_tasks(project, prompts=3, candidates_per_prompt=3 if kind == TaskKind.RANKING else 2)
    client.force_login(labeler_in(project, "empty-manager", role="manager"))
    page = client.get(reverse("reports:project", args=[project.slug]))
    assert page.status_code == 200
    for table in reports.TABLES:
        resp = client.get(reverse("reports:download", args=[project.slug, table, "json"]))
        assert resp.status_code == 200, (table, resp.content[:500])
        body = json.loads(resp.content)
        assert isinstance(body["rows"], list)
        resp = client.get(reverse("reports:download", args=[project.slug, table, "csv"]))
        assert resp.status_code == 200, table
        list(csv.reader(io.StringIO(resp.content.decode())))
