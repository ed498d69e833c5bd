"""Probe (labeling campaign): the report page's ordinal alpha card on a ranking project counts the
tasks with two or more rankings, also when labelers tie at the top.

The note under "Krippendorff's alpha (ordinal, ranks)" showed the top-choice block's item count, which
leaves out every judgment whose best group is a tie: three labelers who all ranked "A = B > C" on
four tasks gave an ordinal alpha of 1.000 "over 0 tasks with 2+ rankings"."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from annotate.models import Task, TaskKind
from annotate.services.leasing import annotation_submit, task_claim_next
from annotate.services.reports import report_compute_now
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def test_ordinal_alpha_note_counts_tasks_with_two_rankings(make_project, labeler_in, make_user, client):
    project = make_project(kind=TaskKind.RANKING, ranking_k=3, overlap=3, allow_rank_ties=True)
    add_tasks(project, prompts=4, candidates_per_prompt=3)
    for _ in range(3):
        user = labeler_in(project)
        for _ in range(4):
            lease = task_claim_next(project=project, labeler=user)
            a, b, c = lease.task.slots.order_by("slot").values_list("candidate_id", flat=True)
            annotation_submit(assignment_id=lease.pk, labeler=user, ranking=[[a, b], [c]])
    ranked_twice = sum(1 for t in Task.objects.filter(project=project) if t.annotations.count() >= 2)
    assert ranked_twice == 4

    overall = report_compute_now(project=project, actor=None).data["overall"]
    assert overall["krippendorff_alpha_ordinal"] == pytest.approx(1.0)
    assert overall["ranked_items"] == ranked_twice

    client.force_login(make_user(is_superuser=True, is_staff=True))
    html = client.get(reverse("reports:project", args=[project.slug])).content.decode()
    card = re.search(r'data-metric="alpha_ordinal".*?rp-kpi-note">([^<]*)<', html, re.S)
    assert card is not None
    assert card.group(1) == f"{ranked_twice} tasks with 2+ rankings"
