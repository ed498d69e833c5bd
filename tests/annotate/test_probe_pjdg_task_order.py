"""Task order "active" weighs people's votes only: an AI judge's label is not a human vote.

Before: ``task_order._vote_counts`` counted every annotation with a choice, the judges' included,
so a judge that labeled (confident or audit routing) the pairs of two models made that pair look
settled and sent the labelers elsewhere, although no person compared those models; the report and
the leaderboards (``counted_judgments``) count people's judgments only. Here a judge labels every
pair of model-0 vs model-1 and nobody else votes: every model pair is as unknown to the people as
any other, so every open task gets the same priority.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from annotate.models import Annotation, AnnotationSource, Choice, Task, TaskCandidate, TaskOrder
from annotate.services.task_order import task_priorities_refresh
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def _models_of(task_id: int) -> set[str]:
    return set(TaskCandidate.objects.filter(task_id=task_id).values_list("candidate__model_name", flat=True))


def test_a_judges_labels_do_not_settle_a_model_pair_for_the_people(make_project):
    project = make_project(overlap=20, task_order=TaskOrder.ACTIVE)
    add_tasks(project, prompts=8, candidates_per_prompt=3, seed=1)
    User = get_user_model()
    judges = [User.objects.create(username=f"judge.{project.pk}.j{i}", is_active=False) for i in range(4)]
    judged = [t for t in Task.objects.filter(project=project) if _models_of(t.pk) == {"model-0", "model-1"}]
    assert judged
    for task in judged:
        for user in judges:
            Annotation.objects.create(task=task, labeler=user, choice=Choice.A, source=AnnotationSource.JUDGE)
    task_priorities_refresh(project_id=project.pk)
    priorities = set(Task.objects.filter(project=project).values_list("priority", flat=True))
    assert len(priorities) == 1, priorities  # no person voted on any pair: all equally unknown
