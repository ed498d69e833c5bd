"""Probe (labeling campaign): on the review page, two labelers who rank a task the same way agree,
whatever order they happened to list the responses of a tie in.

The labeling page shows each labeler the responses in a shuffled order, so a tie "A = B" reaches
the server as [a, b] from one labeler and [b, a] from another. The review page compared the stored
groups as written: the two identical rankings counted as a disagreement (agreement 0.50) and the
task was listed under "Low agreement"."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.models import Task, TaskKind
from annotate.selectors_review import ReviewFilters, review_page
from annotate.services.leasing import annotation_submit, task_claim_next
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def _ranking_project(make_project, labeler_in):
    project = make_project(kind=TaskKind.RANKING, ranking_k=3, overlap=2, allow_rank_ties=True)
    add_tasks(project, prompts=1, candidates_per_prompt=3)
    task = Task.objects.get(project=project)
    a, b, c = task.slots.order_by("slot").values_list("candidate_id", flat=True)
    for ranking in ([[c], [a, b]], [[c], [b, a]]):
        user = labeler_in(project)
        lease = task_claim_next(project=project, labeler=user)
        annotation_submit(assignment_id=lease.pk, labeler=user, ranking=ranking)
    return project, task


def test_same_ranking_with_ties_in_another_order_agrees(make_project, labeler_in):
    project, _task = _ranking_project(make_project, labeler_in)
    [row] = review_page(project=project, filters=ReviewFilters())["tasks"]
    assert row["agreement"] == 1.0
    assert sum(row["votes"].values()) == 2 and len(row["votes"]) == 1
    assert review_page(project=project, filters=ReviewFilters(low_agreement=True))["total"] == 0


def test_review_page_low_agreement_filter_leaves_it_out(make_project, labeler_in, make_user, client):
    project, task = _ranking_project(make_project, labeler_in)
    client.force_login(make_user(is_superuser=True, is_staff=True))
    url = reverse("review:queue", args=[project.slug])
    page = client.get(url).content.decode()
    assert "agreement 1.00" in page
    low = client.get(url, {"low_agreement": "1"})
    assert low.status_code == 200
    assert f'data-task="{task.pk}"' not in low.content.decode()
