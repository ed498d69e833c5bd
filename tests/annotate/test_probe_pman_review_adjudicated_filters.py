"""Review queue, Show "Tasks with a final label": the judgment filters beside it still apply.

Before: with Show set to tasks with a final label, the labeler, flagged, failed-gold, guideline,
time and date filters were dropped in silence: "labeler alice, tasks with a final label" listed
every adjudicated task, also those alice never judged, and the count said so. After: the tasks with
a final label that have a judgment matching the filters (every task with a final label when no
filter is set, also one adjudicated before anyone judged it); the matching judgments are marked.
"""

from __future__ import annotations

import pytest
from django.http import QueryDict

from annotate.models import Annotation, Task
from annotate.selectors_review import ReviewFilters, review_page
from annotate.services.review import task_adjudicate
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def _ids(project, query):
    page = review_page(project=project, filters=ReviewFilters.from_query(QueryDict(query)))
    assert page["total"] == len(page["tasks"])
    return page, sorted(row["task"].pk for row in page["tasks"])


def test_the_judgment_filters_narrow_the_tasks_with_a_final_label(make_project, labeler_in):
    project = make_project(name="Final labels", overlap=2)
    add_tasks(project, prompts=4)
    manager = labeler_in(project, "boss", role="manager")
    alice, bob = labeler_in(project, "alice"), labeler_in(project, "bob")
    t1, t2, t3, t4 = Task.objects.filter(project=project).order_by("id")
    Annotation.objects.create(task=t1, labeler=alice, choice="a")
    Annotation.objects.create(task=t1, labeler=bob, choice="b")
    Annotation.objects.create(task=t2, labeler=bob, choice="tie", flagged=True, flag_reason="odd prompt")
    Annotation.objects.create(task=t3, labeler=alice, choice="a")  # judged, no final label
    for task in (t1, t2, t4):  # t4: a final label before anyone judged it
        task_adjudicate(actor=manager, project=project, task_id=task.pk, choice="b")

    _, every = _ids(project, "state=adjudicated")
    assert every == [t1.pk, t2.pk, t4.pk]
    page, alices = _ids(project, "state=adjudicated&labeler=alice")
    assert alices == [t1.pk]
    marked = {a.labeler.username: a.is_match for a in page["tasks"][0]["annotations"]}
    assert marked == {"alice": True, "bob": False}
    assert _ids(project, "state=adjudicated&flagged=1")[1] == [t2.pk]
    assert _ids(project, "state=adjudicated&labeler=nobody")[1] == []
