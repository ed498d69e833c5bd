"""A project dumped while a slot was kept for a live lease (its overlap lowered meanwhile) and
restored: live leases are not restored, so the slot kept only for one must not come back as a
slot to fill. Before, the dump held the target with the kept slot in it and the restore left it
there: the restored task asked for the old overlap and was handed to another labeler."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from django.utils import timezone

from annotate.errors import InvalidInput
from annotate.models import Project, Task
from annotate.services.backup import project_dump, project_restore
from annotate.services.leasing import annotation_submit, task_claim_next
from annotate.services.projects import membership_add, project_update_settings

pytestmark = pytest.mark.django_db


def _restored_task(project, slug: str) -> Task:
    buf = io.BytesIO()
    project_dump(project=project, out=buf)
    restored, _ = project_restore(stream=io.BytesIO(buf.getvalue()), slug=slug)
    return restored, Task.objects.get(project=restored)


def _overlap_two_labeled_and_held(labelers_on):
    project, alice, bob, carol = labelers_on(3, prompts=1, overlap=2, lease_ttl_seconds=600)
    now = timezone.now()
    first = task_claim_next(project=project, labeler=alice, now=now)
    annotation_submit(assignment_id=first.pk, labeler=alice, choice="left", now=now)
    held = task_claim_next(project=project, labeler=bob, now=now)
    project_update_settings(project=project, overlap=1)
    return project, held, carol, now


def test_a_slot_kept_for_a_live_lease_is_not_restored(labelers_on):
    project, _held, carol, now = _overlap_two_labeled_and_held(labelers_on)
    restored, task = _restored_task(project, "restored-kept")
    assert (task.claims, task.target_labels, task.kept_slots) == (1, 1, 0)  # before: (1, 2, 0)
    membership_add(project=restored, user=carol, role="labeler")
    assert task_claim_next(project=restored, labeler=carol, now=now) is None


def test_a_slot_kept_and_then_labeled_stays_kept_on_restore(labelers_on):
    """Bob submits after the overlap dropped: his label keeps the slot, and the restore keeps it as
    a kept slot, so raising the overlap back to 2 asks for the 2 labels it has, not a third."""
    project, held, _carol, now = _overlap_two_labeled_and_held(labelers_on)
    annotation_submit(assignment_id=held.pk, labeler=held.labeler, choice="right", now=now)
    restored, task = _restored_task(project, "restored-labeled")
    assert (task.claims, task.target_labels, task.kept_slots) == (2, 2, 1)  # before: (2, 2, 0)
    project_update_settings(project=restored, overlap=2)
    task.refresh_from_db()
    assert task.target_labels == 2  # as on the dumped project; before: 3, a label nobody asked for


@pytest.mark.parametrize(
    ("kept", "message"),
    [
        ("1", "must be a whole number of at least 0"),
        (-1, "must be a whole number"),
        (2, "below target_labels"),
    ],
)
def test_a_bad_kept_slots_in_a_dump_is_refused_with_its_line(labelers_on, kept, message):
    project, *_ = _overlap_two_labeled_and_held(labelers_on)
    buf = io.BytesIO()
    project_dump(project=project, out=buf)
    lines = gzip.decompress(buf.getvalue()).decode().splitlines()
    for i, line in enumerate(lines):
        record = json.loads(line)
        if record["type"] == "task":
            record["data"]["kept_slots"] = kept
            lines[i] = json.dumps(record)
    edited = io.BytesIO(gzip.compress("\n".join(lines).encode()))
    with pytest.raises(InvalidInput, match=rf"line \d+: .*kept_slots.*{message}"):
        project_restore(stream=edited, slug="restored-bad")
    assert not Project.objects.filter(slug="restored-bad").exists()
