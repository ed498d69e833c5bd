"""Undo withdraws the automatic extra-label raise that the undone label caused.

Before: the background agreement check raised a split task's ``target_labels`` after a submit; when
the labeler then undid that label, the raise stayed and the task asked for a label nobody needed.
Now the raise records the labels it counted (``annotation_ids``) and the undo, in its transaction,
withdraws the automatic raises that counted the undone label (audited as a system action,
``task.extra_label_withdraw``), never a manager's send-back, never below the task's claims nor
below what the remaining labels still warrant."""

from __future__ import annotations

import pytest

from annotate.models import Annotation, AuditEvent, Task
from annotate.services.extra_labels import task_agreement_check
from annotate.services.leasing import annotation_submit, annotation_undo, task_claim_next
from annotate.services.reports import tasks_send_back
from tests.conftest import add_tasks
from tests.races import HeldTransaction

pytestmark = pytest.mark.django_db


def _label(project, labeler_in, choice: str, task_id: int):
    """A new labeler judges ``task_id``; returns (labeler, lease)."""
    user = labeler_in(project)
    lease = task_claim_next(project=project, labeler=user)
    assert lease.task_id == task_id
    annotation_submit(assignment_id=lease.pk, labeler=user, choice=choice)
    return user, lease


def _split_task(make_project, labeler_in, **settings):
    """Two labels that disagree on a project asking 0.7 agreement; the check raised the target to 3.
    Returns (project, task, second labeler, second lease)."""
    project = make_project(overlap=2, target_agreement=0.7, lease_ttl_seconds=600, **settings)
    (task,) = add_tasks(project, prompts=1)
    _label(project, labeler_in, "tie", task.pk)
    bob, lease = _label(project, labeler_in, "both_bad", task.pk)
    assert task_agreement_check(task_id=task.pk) is True
    assert Task.objects.get(pk=task.pk).target_labels == 3
    return project, task, bob, lease


def test_undoing_the_label_that_split_the_task_withdraws_the_raise(make_project, labeler_in):
    project, task, bob, lease = _split_task(make_project, labeler_in, max_labels_per_task=4)
    annotation_id = Annotation.objects.get(assignment=lease).pk
    raised = AuditEvent.objects.get(action="task.extra_label")

    annotation_undo(assignment_id=lease.pk, labeler=bob)

    task.refresh_from_db()
    assert task.target_labels == 2  # back to the overlap: nobody needs a third label
    assert task.claims == 2  # the first label and bob's reopened lease
    assert annotation_id in raised.details["annotation_ids"]  # the raise names the labels it counted
    event = AuditEvent.objects.get(action="task.extra_label_withdraw")
    assert event.actor is None and event.project_id == project.pk
    assert event.target_type == "annotate.task" and event.target_id == str(task.pk)
    assert event.details["undone_annotation_id"] == annotation_id
    assert event.details["raise_event_ids"] == [raised.pk]
    assert event.details["target_labels"] == [3, 2]
    # nobody else is offered the task now
    assert task_claim_next(project=project, labeler=labeler_in(project)) is None
    # bob agrees this time: no new raise, the task is done with two labels
    annotation_submit(assignment_id=lease.pk, labeler=bob, choice="tie")
    assert task_agreement_check(task_id=task.pk) is False
    assert Task.objects.get(pk=task.pk).target_labels == 2


def test_a_raise_that_comes_back_is_withdrawn_again_and_only_once(make_project, labeler_in):
    _project, task, bob, lease = _split_task(make_project, labeler_in, max_labels_per_task=4)
    annotation_undo(assignment_id=lease.pk, labeler=bob)
    annotation_submit(assignment_id=lease.pk, labeler=bob, choice="both_bad")  # still split
    assert task_agreement_check(task_id=task.pk) is True
    assert Task.objects.get(pk=task.pk).target_labels == 3
    annotation_undo(assignment_id=lease.pk, labeler=bob)
    assert Task.objects.get(pk=task.pk).target_labels == 2  # not 1: the first raise is gone already
    assert AuditEvent.objects.filter(action="task.extra_label_withdraw").count() == 2


def test_a_managers_send_back_is_never_withdrawn(make_project, labeler_in):
    project, task, bob, lease = _split_task(make_project, labeler_in, max_labels_per_task=4)
    manager = labeler_in(project, role="manager")
    tasks_send_back(project=project, task_ids=[task.pk], extra_labels=2, actor=manager)
    assert Task.objects.get(pk=task.pk).target_labels == 5
    annotation_undo(assignment_id=lease.pk, labeler=bob)
    assert Task.objects.get(pk=task.pk).target_labels == 4  # only the automatic raise goes


def test_undo_without_an_automatic_raise_keeps_the_target(make_project, labeler_in):
    project = make_project(overlap=2, target_agreement=0.7, lease_ttl_seconds=600, max_labels_per_task=4)
    (task,) = add_tasks(project, prompts=1)
    _label(project, labeler_in, "tie", task.pk)
    bob, lease = _label(project, labeler_in, "both_bad", task.pk)
    manager = labeler_in(project, role="manager")
    tasks_send_back(project=project, task_ids=[task.pk], extra_labels=1, actor=manager)
    annotation_undo(assignment_id=lease.pk, labeler=bob)
    assert Task.objects.get(pk=task.pk).target_labels == 3
    assert not AuditEvent.objects.filter(action="task.extra_label_withdraw").exists()


def test_only_the_raises_the_undone_label_counted_go(make_project, labeler_in):
    """Raise 1 (2 -> 3) counted two labels, raise 2 (3 -> 4) a third one as well; undoing that
    third label withdraws raise 2 only: the first two labels still warrant raise 1."""
    project, task, _bob, _lease = _split_task(make_project, labeler_in, max_labels_per_task=5)
    carol, lease3 = _label(project, labeler_in, "tie", task.pk)  # 2/3 agree < 0.7
    assert task_agreement_check(task_id=task.pk) is True
    assert Task.objects.get(pk=task.pk).target_labels == 4
    annotation_undo(assignment_id=lease3.pk, labeler=carol)
    task.refresh_from_db()
    assert task.target_labels == 3 and task.claims == 3
    event = AuditEvent.objects.get(action="task.extra_label_withdraw")
    assert event.details["target_labels"] == [4, 3] and len(event.details["raise_event_ids"]) == 1


def test_the_target_never_drops_below_the_tasks_claims(make_project, labeler_in):
    """Undoing the second label after a third labeler took the extra slot: the raise counted the
    undone label, but three labelers are in (one submitted, one reopened, one leased). The raise is
    withdrawn from what the task asks for and the taken slot kept (``kept_slots``; see
    test_undo_extra_label_full_task.py): the target stays at the claims."""
    project, task, bob, lease = _split_task(make_project, labeler_in, max_labels_per_task=4)
    dave = labeler_in(project)
    assert task_claim_next(project=project, labeler=dave).task_id == task.pk
    annotation_undo(assignment_id=lease.pk, labeler=bob)
    task.refresh_from_db()
    assert task.target_labels == 3 == task.claims
    assert task.kept_slots == 1
    event = AuditEvent.objects.get(action="task.extra_label_withdraw")
    assert event.details["target_labels"] == [3, 3]


@pytest.mark.postgres(reason="needs PostgreSQL for real concurrent transactions (set DATABASE_URL)")
@pytest.mark.django_db(transaction=True)
def test_an_undo_during_the_check_waits_for_its_raise_and_withdraws_it(monkeypatch, make_project, labeler_in):
    """The background check is raising the target (not yet committed) when the labeler undoes: the
    undo waits for the task row, then sees the raise and withdraws it."""
    project = make_project(overlap=2, target_agreement=0.7, lease_ttl_seconds=600, max_labels_per_task=4)
    (task,) = add_tasks(project, prompts=1)
    _label(project, labeler_in, "tie", task.pk)
    bob, lease = _label(project, labeler_in, "both_bad", task.pk)
    with HeldTransaction(
        monkeypatch,
        "annotate.services.extra_labels.audit_record",
        lambda: task_agreement_check(task_id=task.pk),
    ) as check:
        annotation_undo(assignment_id=lease.pk, labeler=bob)
    assert check.other_waited, "the undo never waited on the check's task lock"
    assert check.error is None and check.result is True
    assert Task.objects.get(pk=task.pk).target_labels == 2
    assert AuditEvent.objects.filter(action="task.extra_label_withdraw").count() == 1
