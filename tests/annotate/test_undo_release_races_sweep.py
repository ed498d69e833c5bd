"""An undo at the live-lease cap racing the expiry sweep.

The undo gives back the labeler's prefetched lease (updating that task's row) and then locks the
undone task's row (``extra_label_withdraw``). The sweep gives back the claims of other labelers'
expired leases task by task in id order. With the undone task's id below the prefetched one's,
the sweep held the undone task and waited on the prefetched one while the undo held the
prefetched one and waited on the undone one: PostgreSQL killed one of them ("deadlock
detected"), a 500 for the labeler or a failed sweep. The project lock the undo takes (against an
overlap change) does not help: the sweep takes none."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.models import Assignment, AssignmentState, Task
from annotate.services.leasing import annotation_submit, annotation_undo, leases_expire, task_claim_next
from tests.races import HeldTransaction

pytestmark = [
    pytest.mark.postgres(reason="needs PostgreSQL for real concurrent transactions (set DATABASE_URL)"),
    pytest.mark.django_db(transaction=True),
]


def test_an_undo_releasing_its_prefetched_lease_while_the_sweep_runs_does_not_deadlock(
    monkeypatch, labelers_on
):
    project, bob, dave, erin = labelers_on(3, prompts=3, overlap=3, lease_ttl_seconds=600)
    now = timezone.now()
    done = task_claim_next(project=project, labeler=bob, now=now)
    annotation_submit(assignment_id=done.pk, labeler=bob, choice="left", now=now)
    on_screen = task_claim_next(project=project, labeler=bob, now=now)
    prefetched = task_claim_next(
        project=project, labeler=bob, exclude_assignment_ids=[on_screen.pk], now=now + timedelta(seconds=1)
    )
    assert done.task_id < on_screen.task_id < prefetched.task_id
    # other labelers hold the undone task and the prefetched one (and the middle one)
    first = task_claim_next(project=project, labeler=dave, now=now)
    task_claim_next(project=project, labeler=dave, exclude_assignment_ids=[first.pk], now=now)
    last = task_claim_next(project=project, labeler=erin, now=now)
    assert first.task_id == done.task_id and last.task_id == prefetched.task_id
    with HeldTransaction(
        monkeypatch,
        "annotate.services.leasing.audit_record",
        lambda: annotation_undo(assignment_id=done.pk, labeler=bob, now=now + timedelta(seconds=2)),
    ) as undo:
        # dave's and erin's leases are past their expiry then; bob's are locked by the undo
        swept = leases_expire(project_id=project.pk, now=now + timedelta(days=1))
    assert undo.other_waited, "the sweep never waited on the undo"
    assert undo.error is None, undo.error
    assert swept == 3
    assert undo.result.released_assignment_ids == [prefetched.pk]
    assert Assignment.objects.get(pk=done.pk).state == AssignmentState.LIVE
    claims = dict(Task.objects.filter(project=project).values_list("pk", "claims"))
    assert claims == {done.task_id: 1, on_screen.task_id: 1, prefetched.task_id: 0}
