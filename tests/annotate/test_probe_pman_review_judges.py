"""The review queue's per-task agreement and its Low agreement filter count people's votes only.

Before: an AI judge's label on an audit task (judges' votes beside the humans') counted as a vote on
the review page: two labelers who both said A and a judge that said B read "agreement 0.67" and the
task was listed under Low agreement, while the report (``counted_judgments``: people's judgments,
never a judge's) had the same task at full agreement. With two judges the humans were outvoted.
The judge's label is still listed on the card; it is not a vote.
"""

from __future__ import annotations

from collections import Counter

import pytest
from django.http import QueryDict

from annotate.models import Annotation, AnnotationSource, Task
from annotate.selectors_review import LOW_AGREEMENT, ReviewFilters, review_page
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def _page(project, query=""):
    return review_page(project=project, filters=ReviewFilters.from_query(QueryDict(query)))


def test_an_ai_judge_label_is_shown_but_is_not_a_vote(make_project, labeler_in, make_user):
    project = make_project(name="Audit", overlap=2)
    add_tasks(project, prompts=2)
    agreed, split = Task.objects.filter(project=project).order_by("id")
    alice, bob = labeler_in(project, "alice"), labeler_in(project, "bob")
    judges = [make_user("judge-one"), make_user("judge-two")]
    for lab in (alice, bob):
        Annotation.objects.create(task=agreed, labeler=lab, choice="a")
    Annotation.objects.create(task=split, labeler=alice, choice="a")
    Annotation.objects.create(task=split, labeler=bob, choice="b")
    for task in (agreed, split):
        for judge in judges:
            Annotation.objects.create(task=task, labeler=judge, choice="b", source=AnnotationSource.JUDGE)

    rows = {row["task"].pk: row for row in _page(project)["tasks"]}
    for task in (agreed, split):
        people = Counter(
            Annotation.objects.filter(task=task, source=AnnotationSource.HUMAN).values_list(
                "choice", flat=True
            )
        )
        expected = max(people.values()) / sum(people.values())
        assert rows[task.pk]["votes"] == dict(people)
        assert rows[task.pk]["agreement"] == pytest.approx(expected)
        assert len(rows[task.pk]["annotations"]) == 4  # the judges' labels are still on the card
    assert rows[agreed.pk]["agreement"] == 1.0

    low = [row["task"].pk for row in _page(project, "low_agreement=1")["tasks"]]
    assert low == [split.pk]  # 1/2 < LOW_AGREEMENT; the agreed task is not low
    assert 0.5 < LOW_AGREEMENT < 1.0
