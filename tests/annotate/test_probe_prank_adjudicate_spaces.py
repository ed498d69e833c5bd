"""Probe (ranking review): a final ranking typed with more than one space (or a tab) beside "=" is
read like "A=B".

Before: the letters were split on whitespace after only one space on each side of "=" was removed,
so "A  = B C", "A =  B > C" or "A<tab>=<tab>B C" left an empty name beside "=" and were refused with
'"=" joins two responses that tie', which is what they do. Now any run of whitespace around "="
is dropped first: these save A and B tied first, then C; "A = = B" (a missing response) is still
refused with that message."""

from __future__ import annotations

import pytest

from annotate.errors import InvalidInput
from annotate.models import Adjudication, Task, TaskKind
from annotate.services.review import task_adjudicate
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def ranking_task(make_project):
    project = make_project(kind=TaskKind.RANKING, ranking_k=3, allow_rank_ties=True)
    add_tasks(project, prompts=1, candidates_per_prompt=3)
    task = Task.objects.get(project=project)
    slots = list(task.slots.order_by("slot").values_list("candidate_id", flat=True))
    return project, task, slots


@pytest.mark.parametrize("text", ["A  = B C", "A =  B > C", "A\t=\tB C", "a =\n b, c", "A=B C"])
def test_spaces_around_equals_tie_the_letters(ranking_task, make_user, text):
    project, task, (a, b, c) = ranking_task
    adjudication = task_adjudicate(actor=make_user(), project=project, task_id=task.pk, ranking=text)
    assert adjudication.ranking == [[a, b], [c]]


@pytest.mark.parametrize("text", ["A = = B C", "= A B C", "A B C =", "A >= B C"])
def test_an_equals_without_a_response_beside_it_is_still_refused(ranking_task, make_user, text):
    project, task, _ = ranking_task
    with pytest.raises(InvalidInput, match='"=" joins two responses that tie'):
        task_adjudicate(actor=make_user(), project=project, task_id=task.pk, ranking=text)
    assert not Adjudication.objects.exists()
