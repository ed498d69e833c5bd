"""Judge routing does not add a judge's label to a task whose every slot people already hold.

A confident judge route lets the judges take a task's remaining slots (``target_labels`` moves to
``claims`` plus the judges' labels). Before: on a task people had already labeled to its target
(overlap 1, one labeler said B) a later judge job routed it "judge/confident", wrote the judge's A
beside the person's B and raised the target from 1 to 2: the person's finished work now read as a
1-1 split against a model, and the task's target grew although routing only gives judges the
slots people have not taken. After: such a task goes to the people who hold it (route human,
reason ``human_slots_taken``), nothing written; a task with a slot left is routed as before, and an
audit task still gets the judges' vote beside the people's.
"""

from __future__ import annotations

import pytest

from annotate.judges.services import judge_job_run
from annotate.models import Annotation, RoutingDecision, Task
from annotate.services.leasing import annotation_submit, task_claim_next
from tests.annotate import judge_fakesrv as fakesrv
from tests.annotate.test_judges_defects import PAIRS, make_judge_job, prefers_x, routing_project

pytestmark = pytest.mark.django_db


def test_a_task_people_labeled_to_its_target_gets_no_judge_label(make_project, servers, labeler_in):
    project = routing_project(make_project, {"t0": PAIRS["t0"], "t1": PAIRS["t1"]}, overlap=1)
    person = labeler_in(project)
    lease = task_claim_next(project=project, labeler=person)
    annotation_submit(assignment_id=lease.pk, labeler=person, choice="right")
    done, fresh = lease.task_id, Task.objects.exclude(pk=lease.task_id).get(project=project).pk
    url, _ = servers(default=fakesrv.answering(prefers_x))
    judge_job_run(job_id=make_judge_job(project, url), chunk=2)

    task = Task.objects.get(pk=done)
    assert (task.claims, task.target_labels) == (1, 1)
    assert list(Annotation.objects.filter(task=task).values_list("source", flat=True)) == ["human"]
    decision = RoutingDecision.objects.get(task=task)
    assert (decision.route, decision.reason) == ("human", "human_slots_taken")
    # the task nobody labeled yet is the judge's, as before
    task = Task.objects.get(pk=fresh)
    assert (task.claims, task.target_labels) == (1, 1)
    assert list(Annotation.objects.filter(task=task).values_list("source", flat=True)) == ["judge"]
    assert RoutingDecision.objects.filter(task=task, route="judge", reason="confident").exists()
