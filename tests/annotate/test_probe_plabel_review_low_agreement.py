"""Probe (plabel): the review queue's "Low agreement" filter looks at every task.

It read only the newest 5000 tasks with two or more judgments: in a bigger project the older split
tasks never showed up and the page said "0 tasks match". Every task is now checked (in chunks, on
the judgments' verdicts only), with the same agreement rule the cards show."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from annotate.models import Annotation, AnnotationReview, ReviewVerdict, Task
from annotate.selectors_review import ReviewFilters, review_page
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db

TASKS = 5004


def test_low_agreement_finds_split_tasks_beyond_the_newest_5000(make_project, labeler_in):
    project = make_project(name="Big project", overlap=2)
    add_tasks(project, prompts=TASKS)
    alice, bob = labeler_in(project, "alice"), labeler_in(project, "bob")
    ids = list(Task.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    split = set(ids[:3])  # the oldest three: alice and bob disagree; everywhere else they agree
    Annotation.objects.bulk_create(
        [
            Annotation(task_id=tid, labeler=who, choice="b" if (tid in split and who is bob) else "a")
            for tid in ids
            for who in (alice, bob)
        ],
        batch_size=2000,
    )
    page = review_page(project=project, filters=ReviewFilters.from_query(QueryDict("low_agreement=1")))
    assert page["total"] == 3
    assert [row["task"].pk for row in page["tasks"]] == sorted(split, reverse=True)
    assert all(row["agreement"] == 0.5 for row in page["tasks"])
    assert page["has_next"] is False

    # A rejected judgment does not count: that task is left with one vote, no longer split.
    rejected = Annotation.objects.get(task_id=ids[0], labeler=bob)
    AnnotationReview.objects.create(annotation=rejected, verdict=ReviewVerdict.REJECTED, reason="off topic")
    page = review_page(project=project, filters=ReviewFilters.from_query(QueryDict("low_agreement=1")))
    assert page["total"] == 2 and ids[0] not in [row["task"].pk for row in page["tasks"]]
