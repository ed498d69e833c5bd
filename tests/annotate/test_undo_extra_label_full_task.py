"""Undoing the label that made the automatic check raise a task's target, once another labeler has
taken the extra slot (the task is full: claims == target).

Before: the withdrawal never lowered a target below the task's claims, so it withdrew nothing and
the raise stayed for good: when a lease then ended without a label, the task went on asking for
the extra label, although the only label that warranted it was undone. Now the raise is withdrawn
from what the task asks for, and the slot the other labeler holds is kept for them
(``Task.kept_slots``, as when an overlap drops): it goes when a lease ends without a label, and
stays as a label when they submit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.models import AuditEvent, Task
from annotate.services.extra_labels import task_agreement_check
from annotate.services.leasing import (
    annotation_submit,
    annotation_undo,
    assignment_skip,
    leases_expire,
    task_claim_next,
)

pytestmark = pytest.mark.django_db

TTL = 600


def _state(task_id: int) -> tuple[int, int, int]:
    task = Task.objects.get(pk=task_id)
    return task.claims, task.target_labels, task.kept_slots


def _raised_then_taken(labelers_on):
    """Overlap 2, two labels that disagree; the check raises the target to 3; dave takes the extra
    slot; bob undoes the label that split the task. Returns (project, task id, bob's lease, dave's
    lease, carol, now)."""
    project, alice, bob, dave, carol = labelers_on(
        4, prompts=1, overlap=2, target_agreement=0.7, max_labels_per_task=4, lease_ttl_seconds=TTL
    )
    now = timezone.now()
    for user, choice in ((alice, "tie"), (bob, "both_bad")):
        lease = task_claim_next(project=project, labeler=user, now=now)
        annotation_submit(assignment_id=lease.pk, labeler=user, choice=choice, now=now)
    assert task_agreement_check(task_id=lease.task_id) is True
    extra = task_claim_next(project=project, labeler=dave, now=now)
    assert extra.task_id == lease.task_id and _state(lease.task_id) == (3, 3, 0)
    annotation_undo(assignment_id=lease.pk, labeler=bob, now=now)
    return project, lease.task_id, lease, extra, carol, now


def test_the_raise_is_withdrawn_and_the_taken_slot_kept(labelers_on):
    _project, task_id, _bob_lease, _extra, _carol, _now = _raised_then_taken(labelers_on)
    assert _state(task_id) == (3, 3, 1)  # before: (3, 3, 0), the raise kept for good
    event = AuditEvent.objects.get(action="task.extra_label_withdraw")
    assert event.details["target_labels"] == [3, 3]


def test_once_a_lease_ends_without_a_label_nobody_else_is_asked(labelers_on):
    project, task_id, _bob_lease, _extra, carol, now = _raised_then_taken(labelers_on)
    assert leases_expire(now=now + timedelta(seconds=TTL + 1)) == 2  # bob's and dave's
    assert _state(task_id) == (1, 2, 0)  # before: (1, 3, 0)
    later = now + timedelta(seconds=TTL + 2)
    lease = task_claim_next(project=project, labeler=carol, now=later)
    annotation_submit(assignment_id=lease.pk, labeler=carol, choice="tie", now=later)
    assert _state(task_id) == (2, 2, 0)  # two labels that agree: done, as the overlap asks


def test_bob_agreeing_and_dave_skipping_leave_the_task_done(labelers_on):
    project, task_id, bob_lease, extra, carol, now = _raised_then_taken(labelers_on)
    annotation_submit(assignment_id=bob_lease.pk, labeler=bob_lease.labeler, choice="tie", now=now)
    assert task_agreement_check(task_id=task_id) is False
    assignment_skip(assignment_id=extra.pk, labeler=extra.labeler, reason="unsure", now=now)
    assert _state(task_id) == (2, 2, 0)  # before: (2, 3, 0), carol asked for a third label
    assert task_claim_next(project=project, labeler=carol, now=now) is None


def test_dave_submitting_keeps_his_label_in_a_kept_slot(labelers_on):
    _project, task_id, _bob_lease, extra, _carol, now = _raised_then_taken(labelers_on)
    annotation_submit(assignment_id=extra.pk, labeler=extra.labeler, choice="tie", now=now)
    assert _state(task_id) == (3, 3, 1)
