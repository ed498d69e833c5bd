"""A ranking project's report names the responses by the letters the review page gives them.

Before: the report's labels for a ranking task (the response ranked first) were "#1".."#K", in the
confusion tables and the low-agreement list's counts, while the review page, where a manager
follows a low-agreement task up, calls the same responses A, B, C (by slot). Now both say A, B, C,
from one rule (``annotate.letters.response_letter``)."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from annotate.letters import response_letter
from annotate.models import Annotation, Task, TaskKind
from annotate.selectors_review import ReviewFilters, review_page
from annotate.services.reports import report_build
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def test_response_letters():
    assert [response_letter(i) for i in (0, 1, 2, 15, 25, 26, 27)] == ["A", "B", "C", "P", "Z", "AA", "AB"]


def test_ranking_report_and_review_page_use_the_same_letters(make_project, labeler_in):
    project = make_project(kind=TaskKind.RANKING, ranking_k=3, allow_rank_ties=False)
    add_tasks(project, prompts=1, candidates_per_prompt=3)
    task = Task.objects.get(project=project)
    a, b, c = [s.candidate_id for s in sorted(task.slots.all(), key=lambda s: s.slot)]
    alice, bob = labeler_in(project, "alice"), labeler_in(project, "bob")
    Annotation.objects.create(task=task, labeler=alice, ranking=[[b], [a], [c]])  # B first
    Annotation.objects.create(task=task, labeler=bob, ranking=[[c], [a], [b]])  # C first

    report = report_build(project, bootstrap=10, ci_resamples=10)
    assert report["categories"] == ["A", "B", "C"]
    (row,) = report["low_agreement"]["rows"]
    assert row["counts"] == {"B": 1, "C": 1}

    page = review_page(project=project, filters=ReviewFilters.from_query(QueryDict("low_agreement=1")))
    (card,) = page["tasks"]
    shown = {ann.labeler.username: ann.ranking_letters.split()[0] for ann in card["annotations"]}
    assert shown == {"alice": "B", "bob": "C"}  # the review card's first-ranked letter, as in the report
