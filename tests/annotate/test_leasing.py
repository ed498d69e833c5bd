"""Task leasing: claim order, exclusion, expiry, idempotent submit, foreign/expired leases, undo, skip."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.errors import (
    Forbidden,
    GuidelineNotAcknowledged,
    InvalidInput,
    LeaseExpired,
    LeaseNotLive,
    NotFound,
)
from annotate.models import Annotation, Assignment, AssignmentState, Choice, Task, TaskCandidate
from annotate.services.guidelines import guideline_acknowledge, guideline_publish
from annotate.services.leasing import (
    annotation_submit,
    annotation_undo,
    assignment_skip,
    leases_expire,
    task_claim_next,
)
from annotate.services.projects import membership_deactivate, project_update_settings
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def test_claim_gives_each_labeler_distinct_tasks_with_overlap_one(labelers_on):
    project, alice, bob = labelers_on(2, prompts=3, overlap=1)
    a = task_claim_next(project=project, labeler=alice)
    b = task_claim_next(project=project, labeler=bob)
    assert a.task_id != b.task_id
    assert Task.objects.get(pk=a.task_id).claims == 1


def test_claim_returns_the_live_lease_again_instead_of_a_second_task(labelers_on):
    project, alice = labelers_on(1, prompts=3)
    first = task_claim_next(project=project, labeler=alice)
    again = task_claim_next(project=project, labeler=alice)
    assert again.pk == first.pk
    prefetched = task_claim_next(project=project, labeler=alice, exclude_assignment_ids=[first.pk])
    assert prefetched.pk != first.pk and prefetched.task_id != first.task_id
    # at most two live leases per labeler: a third request gives nothing new
    assert (
        task_claim_next(project=project, labeler=alice, exclude_assignment_ids=[first.pk, prefetched.pk])
        is None
    )


def test_fewest_labels_first_and_never_the_same_task_twice(make_project, labeler_in):
    project = make_project(overlap=2)
    tasks = add_tasks(project, prompts=3)
    labelers = [labeler_in(project) for _ in range(4)]
    seen: dict[int, set[int]] = {u.pk: set() for u in labelers}
    order = []
    progress = True
    while progress:
        progress = False
        for user in labelers:
            lease = task_claim_next(project=project, labeler=user)
            if lease is None:
                continue
            progress = True
            assert lease.task_id not in seen[user.pk]
            seen[user.pk].add(lease.task_id)
            order.append(lease.task_id)
            annotation_submit(assignment_id=lease.pk, labeler=user, choice="left")
    # breadth first: the first three claims cover all three tasks before any gets a second labeler
    assert sorted(order[:3]) == sorted(t.pk for t in tasks)
    assert len(order) == 6
    assert all(t.claims == 2 for t in Task.objects.filter(project=project))
    assert Annotation.objects.count() == 6


def test_expired_lease_is_reclaimed_and_offered_to_someone_else(labelers_on):
    project, alice, bob = labelers_on(2, prompts=1, overlap=1, lease_ttl_seconds=60)
    now = timezone.now()
    lease = task_claim_next(project=project, labeler=alice, now=now)
    assert task_claim_next(project=project, labeler=bob, now=now + timedelta(seconds=30)) is None
    later = now + timedelta(seconds=61)
    bobs = task_claim_next(project=project, labeler=bob, now=later)
    assert bobs is not None and bobs.task_id == lease.task_id
    lease.refresh_from_db()
    assert lease.state == AssignmentState.EXPIRED
    assert Task.objects.get(pk=lease.task_id).claims == 1


def test_submit_on_expired_lease_is_refused_and_writes_nothing(labelers_on):
    project, alice = labelers_on(1, prompts=1, lease_ttl_seconds=60)
    now = timezone.now()
    lease = task_claim_next(project=project, labeler=alice, now=now)
    with pytest.raises(LeaseExpired) as exc:
        annotation_submit(
            assignment_id=lease.pk, labeler=alice, choice="left", now=now + timedelta(seconds=61)
        )
    assert exc.value.status_code == 409
    assert Annotation.objects.count() == 0
    lease.refresh_from_db()
    assert lease.state == AssignmentState.LIVE  # the sweep, not the refused submit, expires it


def test_submit_on_someone_elses_lease_is_forbidden(make_project, labeler_in):
    project = make_project()
    add_tasks(project, prompts=1)
    alice, mallory = labeler_in(project), labeler_in(project)
    lease = task_claim_next(project=project, labeler=alice)
    with pytest.raises(Forbidden) as exc:
        annotation_submit(assignment_id=lease.pk, labeler=mallory, choice="left")
    assert exc.value.status_code == 403
    assert Annotation.objects.count() == 0
    with pytest.raises(NotFound):
        annotation_submit(assignment_id=999_999, labeler=alice, choice="left")


def test_double_submit_is_idempotent(labelers_on):
    project, alice = labelers_on(1, prompts=1)
    lease = task_claim_next(project=project, labeler=alice)
    first, created = annotation_submit(
        assignment_id=lease.pk, labeler=alice, choice="left", rationale="clearer"
    )
    replay, created_again = annotation_submit(
        assignment_id=lease.pk, labeler=alice, choice="right", rationale="changed"
    )
    assert created and not created_again
    assert replay.pk == first.pk and replay.rationale == "clearer"
    assert Annotation.objects.count() == 1


def test_left_choice_maps_back_through_shown_order(make_project, labeler_in):
    project = make_project()
    (task,) = add_tasks(project, prompts=1)
    slot_a, slot_b = (
        TaskCandidate.objects.filter(task=task).order_by("slot").values_list("candidate_id", flat=True)
    )
    alice = labeler_in(project)
    lease = task_claim_next(project=project, labeler=alice)
    lease.shown_order = [slot_b, slot_a]  # B on the left
    lease.save(update_fields=["shown_order"])
    annotation, _ = annotation_submit(assignment_id=lease.pk, labeler=alice, choice="left", strength=2)
    assert annotation.choice == Choice.B
    assert annotation.shown_order == [slot_b, slot_a]
    assert annotation.strength == 2


def test_invalid_values_are_refused_with_the_field(labelers_on):
    project, alice = labelers_on(
        1,
        prompts=1,
        allow_tie=False,
        strength_scale=True,
        dimensions=[{"label": "Helpfulness", "required": True}],
    )
    lease = task_claim_next(project=project, labeler=alice)
    cases = [
        ({"choice": "tie"}, "choice"),
        ({"choice": "sideways"}, "choice"),
        ({"choice": "left", "strength": 7}, "strength"),
        ({"choice": "both_bad", "strength": 1}, "strength"),
        ({"choice": "left"}, "ratings"),  # required dimension missing
        ({"choice": "left", "ratings": {"helpfulness": {"1": 9}}}, "ratings"),
        ({"choice": "left", "ranking": [1, 2]}, "ranking"),
        ({"flagged": True, "flag_reason": ""}, "flag_reason"),
    ]
    for payload, field in cases:
        with pytest.raises(InvalidInput) as exc:
            annotation_submit(assignment_id=lease.pk, labeler=alice, **payload)
        assert exc.value.field == field, payload
    assert Annotation.objects.count() == 0
    slots = list(lease.shown_order)
    annotation, _ = annotation_submit(
        assignment_id=lease.pk,
        labeler=alice,
        choice="right",
        ratings={"helpfulness": {str(slots[0]): 2, str(slots[1]): 5}},
    )
    assert annotation.ratings == {"helpfulness": {str(slots[0]): 2, str(slots[1]): 5}}


def test_flag_without_choice_is_recorded(labelers_on):
    project, alice = labelers_on(1, prompts=1)
    lease = task_claim_next(project=project, labeler=alice)
    annotation, _ = annotation_submit(
        assignment_id=lease.pk, labeler=alice, flagged=True, flag_reason="prompt is unsafe"
    )
    assert annotation.flagged and annotation.choice is None and annotation.flag_reason == "prompt is unsafe"


def test_ranking_submit_validates_and_stores_groups(make_project, labeler_in):
    project = make_project(kind="ranking", ranking_k=3, allow_rank_ties=False)
    (task,) = add_tasks(project, prompts=1, candidates_per_prompt=3)
    ids = list(TaskCandidate.objects.filter(task=task).values_list("candidate_id", flat=True))
    alice = labeler_in(project)
    lease = task_claim_next(project=project, labeler=alice)
    with pytest.raises(InvalidInput):
        annotation_submit(assignment_id=lease.pk, labeler=alice, ranking=[ids[0], ids[1]])  # one missing
    with pytest.raises(InvalidInput):
        annotation_submit(
            assignment_id=lease.pk, labeler=alice, ranking=[[ids[0], ids[1]], ids[2]]
        )  # ties off
    annotation, _ = annotation_submit(assignment_id=lease.pk, labeler=alice, ranking=[ids[2], ids[0], ids[1]])
    assert annotation.ranking == [[ids[2]], [ids[0]], [ids[1]]]


def test_guidelines_must_be_acknowledged_before_submitting(make_project, labeler_in, make_user):
    project = make_project()
    add_tasks(project, prompts=2)
    manager = make_user()
    alice = labeler_in(project)
    v1 = guideline_publish(project=project, actor=manager, body="# Prefer honest answers")
    lease = task_claim_next(project=project, labeler=alice)
    with pytest.raises(GuidelineNotAcknowledged):
        annotation_submit(assignment_id=lease.pk, labeler=alice, choice="left")
    guideline_acknowledge(guideline=v1, user=alice)
    annotation, _ = annotation_submit(assignment_id=lease.pk, labeler=alice, choice="left")
    assert annotation.guideline_id == v1.pk
    v2 = guideline_publish(project=project, actor=manager, body="# Prefer honest, short answers")
    assert v2.version == 2
    lease2 = task_claim_next(project=project, labeler=alice)
    with pytest.raises(GuidelineNotAcknowledged):
        annotation_submit(assignment_id=lease2.pk, labeler=alice, choice="left")


def test_undo_reopens_the_task_while_the_lease_is_live(labelers_on):
    project, alice = labelers_on(1, prompts=1, lease_ttl_seconds=60)
    now = timezone.now()
    lease = task_claim_next(project=project, labeler=alice, now=now)
    annotation_submit(assignment_id=lease.pk, labeler=alice, choice="left", now=now)
    annotation_undo(assignment_id=lease.pk, labeler=alice, now=now + timedelta(seconds=5))
    assert Annotation.objects.count() == 0
    lease.refresh_from_db()
    assert lease.state == AssignmentState.LIVE
    annotation, created = annotation_submit(
        assignment_id=lease.pk, labeler=alice, choice="right", now=now + timedelta(seconds=6)
    )
    assert created and annotation.choice in ("a", "b")
    with pytest.raises(LeaseExpired):
        annotation_undo(assignment_id=lease.pk, labeler=alice, now=now + timedelta(seconds=61))
    assert Annotation.objects.count() == 1


def test_skip_frees_the_slot_and_is_not_offered_again(labelers_on):
    project, alice, bob = labelers_on(2, prompts=1, overlap=1)
    lease = task_claim_next(project=project, labeler=alice)
    with pytest.raises(InvalidInput):
        assignment_skip(assignment_id=lease.pk, labeler=alice, reason="  ")
    assignment_skip(assignment_id=lease.pk, labeler=alice, reason="I can't read this language")
    assert Task.objects.get(pk=lease.task_id).claims == 0
    assert task_claim_next(project=project, labeler=alice) is None
    assert task_claim_next(project=project, labeler=bob).task_id == lease.task_id
    with pytest.raises(LeaseNotLive):
        annotation_submit(assignment_id=lease.pk, labeler=alice, choice="left")


def test_deactivating_a_labeler_releases_their_leases(labelers_on):
    project, alice, bob = labelers_on(2, prompts=2, overlap=1)
    lease = task_claim_next(project=project, labeler=alice)
    released = membership_deactivate(project=project, user=alice)
    assert released == 1
    assert Assignment.objects.get(pk=lease.pk).state == AssignmentState.RELEASED
    with pytest.raises(Forbidden):
        task_claim_next(project=project, labeler=alice)
    claimed = {task_claim_next(project=project, labeler=bob).task_id}
    other = task_claim_next(
        project=project,
        labeler=bob,
        exclude_assignment_ids=list(Assignment.objects.filter(labeler=bob).values_list("pk", flat=True)),
    )
    claimed.add(other.task_id)
    assert lease.task_id in claimed


def test_raising_overlap_reopens_full_tasks_and_lowering_never_goes_below_claims(labelers_on):
    project, alice, bob = labelers_on(2, prompts=1, overlap=1)
    lease = task_claim_next(project=project, labeler=alice)
    annotation_submit(assignment_id=lease.pk, labeler=alice, choice="left")
    assert task_claim_next(project=project, labeler=bob) is None
    project_update_settings(project=project, overlap=2)
    assert task_claim_next(project=project, labeler=bob) is not None
    project_update_settings(project=project, overlap=1)
    task = Task.objects.get(pk=lease.task_id)
    assert task.target_labels == 2 == task.claims  # two labelers are in; the target cannot drop below them


def test_leases_expire_sweep_counts(make_project, labeler_in):
    project = make_project(lease_ttl_seconds=30)
    add_tasks(project, prompts=3)
    users = [labeler_in(project) for _ in range(3)]
    now = timezone.now()
    for u in users:
        task_claim_next(project=project, labeler=u, now=now)
    assert leases_expire(now=now + timedelta(seconds=10)) == 0
    assert leases_expire(now=now + timedelta(seconds=31)) == 3
    assert sum(Task.objects.values_list("claims", flat=True)) == 0


def test_renew_restarts_the_clock_of_a_live_lease_only(labelers_on):
    from annotate.services.leasing import assignment_renew

    project, alice, bob = labelers_on(2, prompts=2, lease_ttl_seconds=60)
    now = timezone.now()
    lease = task_claim_next(project=project, labeler=alice, now=now)
    renewed = assignment_renew(assignment_id=lease.pk, labeler=alice, now=now + timedelta(seconds=50))
    assert renewed.expires_at == now + timedelta(seconds=110)
    with pytest.raises(Forbidden):
        assignment_renew(assignment_id=lease.pk, labeler=bob, now=now + timedelta(seconds=51))
    with pytest.raises(LeaseExpired):
        assignment_renew(assignment_id=lease.pk, labeler=alice, now=now + timedelta(seconds=111))
