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


def test_failed_gold_filter_finds_a_missed_gold_ranking(make_project, labeler_in, make_user, client):
    """'Failed gold' on a ranking project listed nothing: it compared only pairwise choices, so a
    labeler who ranked a gold task wrongly was never shown (while the report counted the miss)."""
    project = make_project(kind=TaskKind.RANKING, ranking_k=3, overlap=3, allow_rank_ties=True)
    add_tasks(project, prompts=2, candidates_per_prompt=3)
    gold_task, other = Task.objects.filter(project=project).order_by("id")
    a, b, c = gold_task.slots.order_by("slot").values_list("candidate_id", flat=True)
    Task.objects.filter(pk=gold_task.pk).update(is_gold=True, gold_ranking=[[c], [a, b]])
    answers = {"right": [[c], [b, a]], "wrong": [[a], [b], [c]], "flagger": None}
    for name, ranking in answers.items():
        user = labeler_in(project, name)
        for _ in range(2):
            lease = task_claim_next(project=project, labeler=user)
            if lease.task_id != gold_task.pk:
                ids = list(lease.task.slots.values_list("candidate_id", flat=True))
                annotation_submit(assignment_id=lease.pk, labeler=user, ranking=[ids])
            elif ranking is None:
                annotation_submit(assignment_id=lease.pk, labeler=user, flagged=True, flag_reason="?")
            else:
                annotation_submit(assignment_id=lease.pk, labeler=user, ranking=ranking)

    page = review_page(project=project, filters=ReviewFilters(gold_failed=True))
    assert page["total"] == 1
    [row] = page["tasks"]
    assert row["task"].pk == gold_task.pk
    assert [ann.labeler.username for ann in row["annotations"] if ann.is_match] == ["wrong"]
    assert (
        review_page(project=project, filters=ReviewFilters(gold_failed=True, labeler="right"))["total"] == 0
    )

    client.force_login(make_user(is_superuser=True, is_staff=True))
    resp = client.get(reverse("review:queue", args=[project.slug]), {"gold_failed": "1"})
    assert resp.status_code == 200
    html = resp.content.decode()
    assert f'data-task="{gold_task.pk}"' in html and f'data-task="{other.pk}"' not in html
