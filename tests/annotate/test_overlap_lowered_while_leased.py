"""Lowering a project's overlap while a task is leased.

The target of a task cannot drop below its claims (``claims <= target_labels`` is a database check),
so ``project_update_settings`` lowers each target no further than its claims: a live lease keeps
its slot, as it should. Before, nothing remembered that the slot was kept only for that lease, so
when the lease ended without a label (expired, skipped, released), the target stayed at the old
overlap and the task was handed to another labeler nobody asked for. Now the task remembers how many
slots it kept (``Task.kept_slots``) and a lease ending without a label gives its kept slot back in
the same UPDATE that returns its claim; a submitted lease keeps its slot as a label; a later raise
(overlap, send-back, automatic extra label) is never taken back by it.

The last test also caught a deadlock (there before the kept slots too): an undo releasing its
prefetched lease holds that task's row and then locks the undone one, while an overlap change
moving every task held the second and waited on the first; PostgreSQL killed the overlap change.
The undo now takes the project's row first when it releases a lease, as a settings change does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.models import Task
from annotate.services.extra_labels import task_agreement_check
from annotate.services.leasing import (
    annotation_submit,
    annotation_undo,
    assignment_skip,
    leases_expire,
    task_claim_next,
)
from annotate.services.projects import membership_deactivate, project_update_settings
from annotate.services.reports import tasks_send_back
from tests.races import HeldTransaction

pytestmark = pytest.mark.django_db

TTL = 60


def _state(task_id: int) -> tuple[int, int]:
    """``(claims, target_labels)`` of the task as stored."""
    task = Task.objects.get(pk=task_id)
    return task.claims, task.target_labels


def _one_labeled_one_held(labelers_on, n: int = 3, **settings):
    """Overlap 2: the first labeler labeled the only task, the second holds it; the overlap then drops
    to 1. Returns (project, second's lease, now, the other labelers)."""
    project, alice, bob, *others = labelers_on(n, prompts=1, overlap=2, lease_ttl_seconds=TTL, **settings)
    now = timezone.now()
    first = task_claim_next(project=project, labeler=alice, now=now)
    annotation_submit(assignment_id=first.pk, labeler=alice, choice="left", now=now)
    held = task_claim_next(project=project, labeler=bob, now=now)
    project_update_settings(project=project, overlap=1)
    assert _state(held.task_id) == (2, 2)  # bob's live lease keeps its slot
    return project, held, now, others


def _labeled_then_prefetched_at_the_cap(project, alice, bob, now):
    """Alice labels the first task; bob labels another, takes a third on screen and prefetches
    alice's task behind it (the live-lease cap). Returns (alice's lease, bob's submitted lease,
    his prefetched lease)."""
    a = task_claim_next(project=project, labeler=alice, now=now)
    annotation_submit(assignment_id=a.pk, labeler=alice, choice="left", now=now)
    done = task_claim_next(project=project, labeler=bob, now=now)
    annotation_submit(assignment_id=done.pk, labeler=bob, choice="left", now=now)
    on_screen = task_claim_next(project=project, labeler=bob, now=now + timedelta(seconds=1))
    prefetched = task_claim_next(
        project=project, labeler=bob, exclude_assignment_ids=[on_screen.pk], now=now + timedelta(seconds=2)
    )
    assert prefetched.task_id == a.task_id
    return a, done, prefetched


def test_a_slot_kept_for_a_lease_goes_once_the_lease_ends(labelers_on):
    project, held, now, (carol,) = _one_labeled_one_held(labelers_on)
    assert leases_expire(now=now + timedelta(seconds=TTL + 1)) == 1
    assert _state(held.task_id) == (1, 1)  # before: (1, 2), a free slot at the old overlap
    assert task_claim_next(project=project, labeler=carol, now=now + timedelta(seconds=TTL + 1)) is None


def test_a_skipped_lease_gives_its_kept_slot_back(labelers_on):
    project, held, now, (carol,) = _one_labeled_one_held(labelers_on)
    assignment_skip(assignment_id=held.pk, labeler=held.labeler, reason="unsure", now=now)
    assert _state(held.task_id) == (1, 1)
    assert task_claim_next(project=project, labeler=carol, now=now) is None


def test_a_released_lease_gives_its_kept_slot_back(labelers_on):
    project, held, now, (carol,) = _one_labeled_one_held(labelers_on)
    assert membership_deactivate(project=project, user=held.labeler) == 1
    assert _state(held.task_id) == (1, 1)
    assert task_claim_next(project=project, labeler=carol, now=now) is None


def test_a_submitted_lease_keeps_its_slot_as_a_label(labelers_on):
    project, held, now, (carol,) = _one_labeled_one_held(labelers_on)
    annotation_submit(assignment_id=held.pk, labeler=held.labeler, choice="right", now=now)
    assert _state(held.task_id) == (2, 2)
    assert task_claim_next(project=project, labeler=carol, now=now) is None
    # taken back by an undo and then let go: the slot was kept only for that label
    annotation_undo(assignment_id=held.pk, labeler=held.labeler, now=now)
    assignment_skip(assignment_id=held.pk, labeler=held.labeler, reason="changed my mind", now=now)
    assert _state(held.task_id) == (1, 1)
    assert task_claim_next(project=project, labeler=carol, now=now) is None


def test_whichever_lease_ends_gives_the_kept_slot_back(labelers_on):
    """Overlap 3 to 2 with two leases live: one slot was kept, for either of them. The newest is
    submitted and the older one expires: its slot goes (a flag on the newest lease would have
    gone with its submission and left the target at 3)."""
    project, alice, bob, carol, dave = labelers_on(4, prompts=1, overlap=3, lease_ttl_seconds=TTL)
    now = timezone.now()
    first = task_claim_next(project=project, labeler=alice, now=now)
    annotation_submit(assignment_id=first.pk, labeler=alice, choice="left", now=now)
    older = task_claim_next(project=project, labeler=bob, now=now)
    newer = task_claim_next(project=project, labeler=carol, now=now + timedelta(seconds=30))
    project_update_settings(project=project, overlap=2)
    assert _state(older.task_id) == (3, 3)
    annotation_submit(assignment_id=newer.pk, labeler=carol, choice="right", now=now + timedelta(seconds=31))
    assert leases_expire(now=now + timedelta(seconds=TTL + 1)) == 1  # bob's
    assert _state(older.task_id) == (2, 2)
    assert task_claim_next(project=project, labeler=dave, now=now + timedelta(seconds=TTL + 1)) is None


def test_an_undo_that_releases_the_prefetched_lease_gives_its_kept_slot_back(labelers_on):
    """The undo path: the labeler's prefetched lease, released so the undone one fits under the
    live-lease cap, was on a task that kept its slot."""
    project, alice, bob, carol = labelers_on(3, prompts=3, overlap=2, lease_ttl_seconds=600)
    now = timezone.now()
    a, done, prefetched = _labeled_then_prefetched_at_the_cap(project, alice, bob, now)
    project_update_settings(project=project, overlap=1)
    assert _state(a.task_id) == (2, 2)
    undone = annotation_undo(assignment_id=done.pk, labeler=bob, now=now + timedelta(seconds=3))
    assert undone.released_assignment_ids == [prefetched.pk]
    assert _state(a.task_id) == (1, 1)
    assert task_claim_next(project=project, labeler=carol, now=now + timedelta(seconds=3)) is None


@pytest.mark.parametrize(("overlap", "target"), [(2, 2), (3, 3)])
def test_raising_the_overlap_again_while_the_lease_lives(labelers_on, overlap, target):
    """Overlap 2 -> 1 -> ``overlap`` with bob's lease live: the task asks for ``overlap`` labels
    whatever bob does (before: 2 -> 2 -> 3 or 4, one slot too many), and his lease ending keeps them."""
    project, held, now, (carol,) = _one_labeled_one_held(labelers_on)
    project_update_settings(project=project, overlap=overlap)
    assert _state(held.task_id) == (2, target)
    assert leases_expire(now=now + timedelta(seconds=TTL + 1)) == 1
    assert _state(held.task_id) == (1, target)
    assert task_claim_next(project=project, labeler=carol, now=now + timedelta(seconds=TTL + 1)) is not None


def test_a_send_back_while_the_lease_lives_is_not_taken_back(labelers_on, make_user):
    project, held, now, (carol, dave) = _one_labeled_one_held(labelers_on, n=4)
    tasks_send_back(project=project, task_ids=[held.task_id], extra_labels=1, actor=make_user("boss"))
    assert _state(held.task_id) == (2, 3)  # one more than the target the manager saw
    assert leases_expire(now=now + timedelta(seconds=TTL + 1)) == 1
    assert _state(held.task_id) == (1, 3)
    later = now + timedelta(seconds=TTL + 1)
    assert task_claim_next(project=project, labeler=carol, now=later) is not None
    assert task_claim_next(project=project, labeler=dave, now=later) is not None


def test_an_extra_label_raise_after_the_overlap_dropped_is_not_taken_back(labelers_on):
    """Two labels that disagree, the overlap lowered to 1 (both slots kept: they are labels), then the
    automatic check asks for a third label: a lease on that slot ending later leaves the raise."""
    project, held, now, (carol,) = _one_labeled_one_held(
        labelers_on, target_agreement=0.7, max_labels_per_task=4
    )
    annotation_submit(assignment_id=held.pk, labeler=held.labeler, choice="tie", now=now)
    assert _state(held.task_id) == (2, 2)
    assert task_agreement_check(task_id=held.task_id) is True
    assert _state(held.task_id) == (2, 3)
    third = task_claim_next(project=project, labeler=carol, now=now)
    assert leases_expire(now=now + timedelta(seconds=TTL + 1)) == 1
    assert third.task_id == held.task_id
    assert _state(held.task_id) == (2, 3)  # the raise stays: the slot is free again


@pytest.mark.postgres(reason="needs PostgreSQL for real concurrent transactions (set DATABASE_URL)")
@pytest.mark.django_db(transaction=True)
def test_a_lease_expiring_while_the_overlap_drops_gives_its_slot_back(monkeypatch, labelers_on):
    """The settings change holds the task's row, its new target written but not committed, when the
    sweep expires bob's lease: the sweep waits on the row and, once the change commits, computes
    the target from the row as committed (kept slot included), so the slot goes."""
    project, alice, bob, carol = labelers_on(
        3, prompts=1, overlap=2, lease_ttl_seconds=TTL, task_order="active"
    )
    now = timezone.now()
    first = task_claim_next(project=project, labeler=alice, now=now)
    annotation_submit(assignment_id=first.pk, labeler=alice, choice="left", now=now)
    held = task_claim_next(project=project, labeler=bob, now=now)
    with HeldTransaction(
        monkeypatch,
        "annotate.services.task_order.task_order_changed",
        lambda: project_update_settings(project=project, overlap=1, task_order="fewest_labels"),
    ) as change:
        assert leases_expire(now=now + timedelta(seconds=TTL + 1)) == 1
    assert change.other_waited, "the sweep never waited on the settings change"
    assert change.error is None, change.error
    assert _state(held.task_id) == (1, 1)
    assert task_claim_next(project=project, labeler=carol, now=now + timedelta(seconds=TTL + 1)) is None


@pytest.mark.postgres(reason="needs PostgreSQL for real concurrent transactions (set DATABASE_URL)")
@pytest.mark.django_db(transaction=True)
def test_the_overlap_dropping_while_a_lease_is_released_counts_the_release(monkeypatch, labelers_on):
    """Overlap 3 -> 2 with bob and carol holding the task (one slot kept for either). Bob's undo
    releases his prefetched lease on it and is held before its COMMIT when the overlap drops to 1:
    the settings change waits on the task's row and moves it as the release left it, so carol's
    lease is the only one keeping a slot and the task asks for one label once it ends."""
    project, alice, bob, carol, dave = labelers_on(4, prompts=3, overlap=3, lease_ttl_seconds=600)
    now = timezone.now()
    first, done, prefetched = _labeled_then_prefetched_at_the_cap(project, alice, bob, now)
    for _ in range(2):  # carol labels the two other tasks first, so her next one is alice's
        other = task_claim_next(project=project, labeler=carol, now=now + timedelta(seconds=3))
        annotation_submit(
            assignment_id=other.pk, labeler=carol, choice="left", now=now + timedelta(seconds=3)
        )
    held = task_claim_next(project=project, labeler=carol, now=now + timedelta(seconds=3))
    assert held.task_id == first.task_id
    project_update_settings(project=project, overlap=2)
    assert _state(first.task_id) == (3, 3)
    with HeldTransaction(
        monkeypatch,
        "annotate.services.leasing.audit_record",
        lambda: annotation_undo(assignment_id=done.pk, labeler=bob, now=now + timedelta(seconds=4)),
    ) as undo:
        project_update_settings(project=project, overlap=1)
    assert undo.other_waited, "the settings change never waited on the release"
    assert undo.error is None, undo.error
    assert undo.result.released_assignment_ids == [prefetched.pk]
    assert _state(first.task_id) == (2, 2)  # alice's label and carol's lease
    assignment_skip(assignment_id=held.pk, labeler=carol, reason="unsure", now=now + timedelta(seconds=5))
    assert _state(first.task_id) == (1, 1)
    assert task_claim_next(project=project, labeler=dave, now=now + timedelta(seconds=5)) is None
