"""Task order "active": leasing offers the highest-priority task among those with the fewest
claims; priorities come from the Bradley-Terry information of each model pair; the leasing
invariants (fewest claims first, no over-assignment, never the same task twice) still hold."""

from __future__ import annotations

import random

import pytest
from django.db.models import F

from annotate.models import Annotation, Choice, OutboxMessage, Task, TaskCandidate, TaskOrder
from annotate.services.leasing import annotation_submit, task_claim_next
from annotate.services.projects import project_update_settings
from annotate.services.task_order import FEW_VOTES_BONUS, pair_priorities, task_priorities_refresh
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def _models_of(task_id: int) -> tuple[str, str]:
    names = (
        TaskCandidate.objects.filter(task_id=task_id)
        .order_by("slot")
        .values_list("candidate__model_name", flat=True)
    )
    return tuple(names)


def test_next_claim_is_the_highest_priority_among_the_fewest_claims(make_project, labeler_in):
    project = make_project(overlap=3, task_order=TaskOrder.ACTIVE)
    tasks = add_tasks(project, prompts=6)
    by_id = {t.pk: t for t in tasks}
    ids = sorted(by_id)
    # the highest priority of all sits on a task that already has a claim: it must wait its turn
    Task.objects.filter(pk=ids[0]).update(priority=9.0, claims=1)
    Task.objects.filter(pk=ids[3]).update(priority=0.5)
    Task.objects.filter(pk=ids[4]).update(priority=0.7)
    Task.objects.filter(pk=ids[1]).update(priority=0.5)
    order = []
    for _ in range(5):
        lease = task_claim_next(project=project, labeler=labeler_in(project))
        order.append(lease.task_id)
    # claims 0 first, by priority (ties: oldest first), then the task that had a claim
    assert order == [ids[4], ids[1], ids[3], ids[2], ids[5]]
    lease = task_claim_next(project=project, labeler=labeler_in(project))
    assert lease.task_id == ids[0]  # every task now has one claim: the priority decides


def test_fewest_labels_order_is_unchanged_when_every_priority_is_zero(make_project, labeler_in):
    project = make_project(overlap=2)
    tasks = add_tasks(project, prompts=4)
    order = [task_claim_next(project=project, labeler=labeler_in(project)).task_id for _ in range(4)]
    assert order == sorted(t.pk for t in tasks)


def test_priorities_prefer_uncertain_pairs_with_few_votes(make_project, labeler_in):
    project = make_project(overlap=20, task_order=TaskOrder.ACTIVE)
    add_tasks(project, prompts=8, candidates_per_prompt=3, seed=1)
    settled = [
        t for t in Task.objects.filter(project=project) if set(_models_of(t.pk)) == {"model-0", "model-1"}
    ]
    voters = [labeler_in(project) for _ in range(4)]
    for task in settled:  # model-0 beats model-1 every time: that order is known
        a_is_0 = _models_of(task.pk)[0] == "model-0"
        for user in voters:
            Annotation.objects.create(task=task, labeler=user, choice=Choice.A if a_is_0 else Choice.B)
    assert task_priorities_refresh(project_id=project.pk) == Task.objects.filter(project=project).count()
    prio = {t.pk: t.priority for t in Task.objects.filter(project=project)}
    settled_ids = {t.pk for t in settled}
    assert max(prio[t] for t in settled_ids) < min(p for t, p in prio.items() if t not in settled_ids)
    assert len({prio[t] for t in settled_ids}) == 1  # one value per model pair
    # the first task offered to a newcomer is one of the unknown pairs
    lease = task_claim_next(project=project, labeler=labeler_in(project))
    assert lease.task_id not in settled_ids
    # a refresh with nothing new writes nothing
    assert task_priorities_refresh(project_id=project.pk) == 0


def test_pair_priorities_give_unseen_pairs_the_full_bonus():
    counts = {("m0", "m1"): {"a": 30, "b": 1}, ("m1", "m2"): {"tie": 2}}
    p = pair_priorities(counts, [("m0", "m1"), ("m1", "m2"), ("m2", "m3"), ("m3", "m3")])
    assert p[("m2", "m3")] > p[("m1", "m2")] > p[("m0", "m1")]
    assert p[("m3", "m3")] == pytest.approx(FEW_VOTES_BONUS, rel=0.03)  # same model: only "too few votes"


def test_switching_back_to_fewest_labels_zeroes_the_priorities(make_project):
    project = make_project(overlap=2, task_order=TaskOrder.ACTIVE)
    add_tasks(project, prompts=3, candidates_per_prompt=3)
    task_priorities_refresh(project_id=project.pk)
    assert Task.objects.filter(project=project, priority__gt=0).exists()
    project_update_settings(project=project, task_order=TaskOrder.FEWEST_LABELS)
    assert not Task.objects.filter(project=project).exclude(priority=0).exists()
    assert task_priorities_refresh(project_id=project.pk) == 0


def test_a_submit_enqueues_one_debounced_refresh_through_the_outbox(make_project, labeler_in):
    active = make_project(overlap=2, task_order=TaskOrder.ACTIVE)
    plain = make_project(overlap=2)
    add_tasks(active, prompts=3)
    add_tasks(plain, prompts=3)
    for project in (active, plain):
        for _ in range(2):
            user = labeler_in(project)
            lease = task_claim_next(project=project, labeler=user)
            annotation_submit(assignment_id=lease.pk, labeler=user, choice="tie")
    # non-transactional test: on_commit never fires, so the outbox rows stay to be read
    names = list(OutboxMessage.objects.values_list("task_name", "args"))
    assert names == [("annotate.task_priorities_refresh", [active.pk])]


def test_active_order_keeps_the_leasing_invariants(make_project, labeler_in):
    project = make_project(overlap=2, task_order=TaskOrder.ACTIVE)
    add_tasks(project, prompts=5, candidates_per_prompt=3, seed=2)
    rng = random.Random(3)
    for task in Task.objects.filter(project=project):
        Task.objects.filter(pk=task.pk).update(priority=rng.random())
    labelers = [labeler_in(project) for _ in range(5)]
    done: dict[int, set[int]] = {u.pk: set() for u in labelers}
    claimed = 0
    progress = True
    while progress:
        progress = False
        for user in labelers:
            open_for_user = Task.objects.filter(project=project, claims__lt=F("target_labels")).exclude(
                pk__in=done[user.pk]
            )
            fewest = min((t.claims for t in open_for_user), default=None)
            top = max((t.priority for t in open_for_user if t.claims == fewest), default=None)
            lease = task_claim_next(project=project, labeler=user)
            if lease is None:
                assert fewest is None
                continue
            progress = True
            claimed += 1
            task = Task.objects.get(pk=lease.task_id)
            assert lease.task_id not in done[user.pk]
            assert task.claims - 1 == fewest and task.priority == top  # fewest first, then priority
            done[user.pk].add(lease.task_id)
            annotation_submit(assignment_id=lease.pk, labeler=user, choice="tie")
            # priorities move under the labelers' feet: the rule still holds for the next claim
            Task.objects.filter(pk=rng.choice(list(done[user.pk]))).update(priority=rng.random())
    assert claimed == Task.objects.filter(project=project).count() * 2
    assert all(t.claims == t.target_labels == 2 for t in Task.objects.filter(project=project))


def test_the_settings_page_sets_order_target_and_cap(make_project, labeler_in, client):
    from annotate.models import AuditEvent

    project = make_project(overlap=2, task_order=TaskOrder.ACTIVE)
    add_tasks(project, prompts=2, candidates_per_prompt=3)
    task_priorities_refresh(project_id=project.pk)
    boss = labeler_in(project, role="manager")
    client.force_login(boss)
    url = f"/projects/{project.slug}/manage/settings/"
    page = client.get(url).content.decode()
    assert "Task order and extra labels" in page and 'value="active" selected' in page
    form = {
        "name": project.name,
        "overlap": "2",
        "lease_ttl_minutes": "15",
        "rating_scale_max": "5",
        "allow_tie": "on",
        "task_order": "fewest_labels",
        "target_agreement": "0.7",
        "max_labels_per_task": "4",
        "dim-TOTAL_FORMS": "0",
        "dim-INITIAL_FORMS": "0",
    }
    assert client.post(url, form).status_code == 302
    project.refresh_from_db()
    assert (project.task_order, project.target_agreement, project.max_labels_per_task) == (
        "fewest_labels",
        0.7,
        4,
    )
    assert not Task.objects.filter(project=project).exclude(priority=0).exists()
    changes = AuditEvent.objects.get(action="project.settings").details["changes"]
    assert changes["task_order"] == ["active", "fewest_labels"] and changes["target_agreement"] == [None, 0.7]
    bad = client.post(url, {**form, "target_agreement": "1.5"})
    assert bad.status_code == 400 and b"less than or equal to 1" in bad.content
    bad = client.post(url, {**form, "task_order": "random"})
    assert bad.status_code == 400 and b"Select a valid choice" in bad.content
