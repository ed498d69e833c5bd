"""Undoing a label whose automatic extra-label raise turned a kept slot into an ordinary one.

A task keeps a slot for a labeler who held it when the manager lowered the overlap
(``Task.kept_slots``). When that labeler's label then split the task, the agreement check raised
the target by one and made the kept slot an ordinary one (so no lease ending later takes the raise
back). Before: undoing that label withdrew the raise by one only, so the task went on asking for
one label more than the overlap: the kept slot was not kept any more, and once the labeler's
reopened lease ended without a label, the task was handed to another labeler nobody asked for.
Now the raise records the kept slots it absorbed and the withdrawal gives them back as kept slots."""

from __future__ import annotations

import pytest
from django.db.models import F

from annotate.models import AuditEvent, Task
from annotate.services.extra_labels import task_agreement_check
from annotate.services.leasing import annotation_submit, annotation_undo, assignment_skip, task_claim_next
from annotate.services.projects import project_update_settings
from core.audit import audit_record
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def _state(task_id: int) -> tuple[int, int, int]:
    """``(claims, target_labels, kept_slots)`` as stored."""
    task = Task.objects.get(pk=task_id)
    return task.claims, task.target_labels, task.kept_slots


def test_undo_gives_the_kept_slot_back_and_the_task_ends_at_the_overlap(make_project, labeler_in):
    project = make_project(overlap=3, target_agreement=0.7, lease_ttl_seconds=600, max_labels_per_task=5)
    (task,) = add_tasks(project, prompts=1)
    a, b, c, newcomer = (labeler_in(project) for _ in range(4))
    for user, choice in ((a, "tie"), (b, "both_bad")):
        lease = task_claim_next(project=project, labeler=user)
        annotation_submit(assignment_id=lease.pk, labeler=user, choice=choice)
    held = task_claim_next(project=project, labeler=c)
    project_update_settings(project=project, overlap=2)
    assert _state(task.pk) == (3, 3, 1)  # c's live lease keeps its slot

    annotation_submit(assignment_id=held.pk, labeler=c, choice="tie")  # 2 of 3 agree: below 0.7
    assert task_agreement_check(task_id=task.pk) is True
    assert _state(task.pk) == (3, 4, 0)  # one label more than the task has; the kept slot is ordinary
    assert AuditEvent.objects.get(action="task.extra_label").details["kept_slots"] == 1

    annotation_undo(assignment_id=held.pk, labeler=c)
    assert _state(task.pk) == (3, 3, 1)  # as before c's label: c's reopened lease keeps its slot
    assert AuditEvent.objects.get(action="task.extra_label_withdraw").details["target_labels"] == [4, 3]

    assignment_skip(assignment_id=held.pk, labeler=c, reason="not sure")
    assert _state(task.pk) == (2, 2, 0)  # the overlap: the task is done with its two labels
    assert task_claim_next(project=project, labeler=newcomer) is None


def test_a_raise_recorded_before_kept_slots_were_recorded_withdraws_one(make_project, labeler_in):
    """A raise event without ``kept_slots`` (as the check wrote them before) counts as none kept."""
    project = make_project(overlap=2, target_agreement=0.7, lease_ttl_seconds=600, max_labels_per_task=4)
    (task,) = add_tasks(project, prompts=1)
    a, b = labeler_in(project), labeler_in(project)
    lease = task_claim_next(project=project, labeler=a)
    first = annotation_submit(assignment_id=lease.pk, labeler=a, choice="tie")[0]
    held = task_claim_next(project=project, labeler=b)
    second = annotation_submit(assignment_id=held.pk, labeler=b, choice="both_bad")[0]
    # the raise as the check made it before: target + 1, an event without kept_slots
    Task.objects.filter(pk=task.pk).update(target_labels=F("target_labels") + 1)
    audit_record(
        actor=None, project=project, action="task.extra_label", target=task,
        details={"agreement": 0.5, "target_labels": [2, 3], "annotation_ids": [first.pk, second.pk]},
    )  # fmt: skip
    annotation_undo(assignment_id=held.pk, labeler=b)
    assert _state(task.pk) == (2, 2, 0)
