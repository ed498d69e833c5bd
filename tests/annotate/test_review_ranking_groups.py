"""A final ranking never holds an empty group: a stray "=" typed on the review page (or an empty
list from the API) is refused with a message in letters. Before, "= B A C" saved [[], B, A, C]."""

from __future__ import annotations

import pytest

from annotate.errors import InvalidInput
from annotate.models import Adjudication, Task, TaskKind
from annotate.services.review import task_adjudicate
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def ranking_task(make_project, labeler_in):
    project = make_project(kind=TaskKind.RANKING, ranking_k=3)
    add_tasks(project, prompts=1, candidates_per_prompt=3)
    return project, labeler_in(project, "boss", role="manager"), Task.objects.get(project=project)


@pytest.mark.parametrize("typed", ["= B A C", "B A C =", "B == A C", "B A= C=", " = "])
def test_a_stray_equals_sign_is_refused(ranking_task, typed):
    project, manager, task = ranking_task
    with pytest.raises(InvalidInput, match='"=" joins two responses that tie'):
        task_adjudicate(actor=manager, project=project, task_id=task.pk, ranking=typed)
    assert not Adjudication.objects.exists()


def test_nothing_typed_asks_for_the_letters(ranking_task):
    project, manager, task = ranking_task
    with pytest.raises(InvalidInput, match=r'Type the responses best first, as in "B A=C" \(A, B, C\)'):
        task_adjudicate(actor=manager, project=project, task_id=task.pk, ranking="  ")


def test_an_empty_group_from_the_api_is_refused(ranking_task):
    project, manager, task = ranking_task
    ids = list(task.slots.order_by("slot").values_list("candidate_id", flat=True))
    with pytest.raises(InvalidInput, match="empty group"):
        task_adjudicate(actor=manager, project=project, task_id=task.pk, ranking=[[], *[[i] for i in ids]])
    assert task_adjudicate(actor=manager, project=project, task_id=task.pk, ranking="B A=C").ranking == [
        [ids[1]],
        [ids[0], ids[2]],
    ]
