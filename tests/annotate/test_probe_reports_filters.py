"""Probe: query parameters of the review page and the report page that name nothing (a labeler
who does not exist, a guideline version never written, a state that is no state, a pair index out
of range, dates at the ends of the calendar) answer 200 with nothing matched or 400 with a message,
never a 500, on a pairwise and on a ranking project."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.models import Annotation, Guideline, Task, TaskKind
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture(params=[TaskKind.PAIRWISE, TaskKind.RANKING])
def labeled(request, make_project, labeler_in):
    kind = request.param
    extra = {"ranking_k": 3, "allow_rank_ties": True} if kind == TaskKind.RANKING else {}
    project = make_project(kind=kind, **extra)
    add_tasks(project, prompts=3, candidates_per_prompt=3 if kind == TaskKind.RANKING else 2)
    g = Guideline.objects.create(project=project, version=1, body="v1")
    labs = [labeler_in(project, f"flt{i}") for i in range(2)]
    for task in Task.objects.filter(project=project).prefetch_related("slots"):
        ids = [s.candidate_id for s in sorted(task.slots.all(), key=lambda s: s.slot)]
        for i, lab in enumerate(labs):
            kw = (
                {"ranking": [ids] if i else [[c] for c in ids]}
                if kind == TaskKind.RANKING
                else {"choice": "ab"[i]}
            )
            Annotation.objects.create(task=task, labeler=lab, shown_order=ids, guideline=g, **kw)
    return project, labeler_in(project, f"flt-mgr-{kind}", role="manager")


@pytest.mark.parametrize(
    "query",
    [
        {"labeler": "nobody-at-all"},
        {"labeler": "flt0", "state": "skipped"},
        {"guideline": "999999"},
        {"state": "not-a-state"},
        {"state": "adjudicated"},
        {"low_agreement": "1"},
        {"low_agreement": "1", "page": "999999"},
        {"since": "9999-12-31"},
        {"until": "0001-01-01"},
        {"since": "0001-01-01", "until": "9999-12-31", "flagged": "1", "gold_failed": "1"},
        {"min_seconds": "10000000", "max_seconds": "10000000"},
        {"page": "1000000"},
    ],
)
def test_review_filters_that_match_nothing(client, labeled, query):
    project, manager = labeled
    client.force_login(manager)
    resp = client.get(reverse("review:queue", args=[project.slug]), query)
    assert resp.status_code == 200, resp.content[:1000]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"guideline": "0"}, "guideline must be between"),
        ({"guideline": "v1"}, "guideline must be a whole number"),
        ({"page": "0"}, "page must be between"),
        ({"since": "2024-02-30"}, "since must be a date"),
        ({"until": "10000-01-01"}, "until must be a date"),
        ({"min_seconds": "-1"}, "min seconds must be between"),
        ({"labeler": "a\x00b"}, "labeler must not contain a NUL"),
        # a range turned around (it was a 200 with an empty queue)
        ({"min_seconds": "10000000", "max_seconds": "0"}, "min seconds must not be more than max seconds"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "since must not be after until"),
    ],
)
def test_review_filters_that_are_malformed_answer_400_with_a_message(client, labeled, query, message):
    project, manager = labeled
    client.force_login(manager)
    resp = client.get(reverse("review:queue", args=[project.slug]), query)
    assert resp.status_code == 400
    assert message in resp.content.decode()


def test_report_pair_and_downloads_that_name_nothing(client, labeled):
    project, manager = labeled
    client.force_login(manager)
    for pair in ("-1", "5", "abc", "1" * 500, "0x1", "\u0661", "9" * 5000):
        assert client.get(reverse("reports:project", args=[project.slug]), {"pair": pair}).status_code == 200
    assert client.get(f"/reports/{project.slug}/download/nothing.json").status_code == 404
    assert client.get(f"/reports/{project.slug}/download/metrics.xml").status_code == 404
    assert client.get("/reports/no-such-project/download/metrics.json").status_code == 404
    assert client.get("/reports/no-such-project/").status_code == 404
