"""Automatic extra labels: a task that reached its labels with agreement below the project's
target asks for one more, up to the cap, audited as a system action; enqueued through the outbox
after submit and run by a real Celery worker."""

from __future__ import annotations

import time

import pytest

from annotate.models import AuditEvent, OutboxMessage, Task
from annotate.services.extra_labels import task_agreement_check
from annotate.services.leasing import annotation_submit, task_claim_next


def _label(project, labeler_in, choice: str, task_id: int | None = None):
    user = labeler_in(project)
    lease = task_claim_next(project=project, labeler=user)
    assert task_id is None or lease.task_id == task_id
    annotation_submit(assignment_id=lease.pk, labeler=user, choice=choice)
    return lease.task_id


@pytest.mark.django_db
def test_low_agreement_raises_the_target_by_one_up_to_the_cap(make_project, labeler_in):
    from tests.conftest import add_tasks

    project = make_project(overlap=2, target_agreement=0.7, max_labels_per_task=4)
    (task,) = add_tasks(project, prompts=1)
    _label(project, labeler_in, "tie")
    assert task_agreement_check(task_id=task.pk) is False  # 1 of 2 labels: not yet
    _label(project, labeler_in, "both_bad")
    assert task_agreement_check(task_id=task.pk) is True  # 1/2 agree < 0.7
    assert task_agreement_check(task_id=task.pk) is False  # a second message changes nothing
    task.refresh_from_db()
    assert task.target_labels == 3
    event = AuditEvent.objects.get(action="task.extra_label")
    assert event.actor is None and event.target_id == str(task.pk)
    assert event.details["agreement"] == 0.5 and event.details["target_labels"] == [2, 3]

    _label(project, labeler_in, "tie", task.pk)  # 2/3 = 0.667 < 0.7: one more
    assert task_agreement_check(task_id=task.pk) is True
    _label(project, labeler_in, "both_bad", task.pk)  # 2/4: still split, but the cap is 4
    assert task_agreement_check(task_id=task.pk) is False
    task.refresh_from_db()
    assert task.target_labels == 4 and task.claims == 4
    assert AuditEvent.objects.filter(action="task.extra_label").count() == 2
    assert task_claim_next(project=project, labeler=labeler_in(project)) is None


@pytest.mark.django_db
def test_agreeing_labels_and_projects_without_a_target_are_left_alone(make_project, labeler_in):
    from tests.conftest import add_tasks

    agreeing = make_project(overlap=2, target_agreement=0.7)
    (t1,) = add_tasks(agreeing, prompts=1)
    off = make_project(overlap=2)
    (t2,) = add_tasks(off, prompts=1)
    for project, choices in ((agreeing, ("tie", "tie")), (off, ("tie", "both_bad"))):
        for choice in choices:
            _label(project, labeler_in, choice)
    assert task_agreement_check(task_id=t1.pk) is False
    assert task_agreement_check(task_id=t2.pk) is False
    assert task_agreement_check(task_id=10**9) is False  # a deleted task: nothing to do
    assert Task.objects.get(pk=t1.pk).target_labels == Task.objects.get(pk=t2.pk).target_labels == 2
    # only the project with a target enqueued checks (one per submit, through the outbox)
    assert list(OutboxMessage.objects.values_list("task_name", "args")) == [
        ("annotate.task_agreement_check", [t1.pk]),
        ("annotate.task_agreement_check", [t1.pk]),
    ]


@pytest.mark.django_db
def test_settings_refuse_a_target_outside_zero_to_one(make_project):
    from annotate.errors import InvalidInput
    from annotate.services.projects import project_update_settings

    project = make_project()
    for bad in (0, 1.5, "lots"):
        with pytest.raises(InvalidInput, match="Target agreement"):
            project_update_settings(project=project, target_agreement=bad)
    with pytest.raises(InvalidInput, match="task_order"):
        project_update_settings(project=project, task_order="random")
    project_update_settings(project=project, target_agreement=0.8, max_labels_per_task=6)
    project.refresh_from_db()
    assert (project.target_agreement, project.max_labels_per_task) == (0.8, 6)


# --- the real worker ------------------------------------------------------------------------------

from tests.generation.test_worker import (  # noqa: E402
    _logs,
    postgres_db,  # noqa: F401 - fixture
    publish_to_redis,  # noqa: F401 - fixture
    redis_broker,  # noqa: F401 - fixture
    start_worker,  # noqa: F401 - fixture
)


@pytest.fixture
def default_queue_worker(start_worker):  # noqa: F811
    return start_worker("default", queue="default", pool="solo")


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("publish_to_redis")
def test_a_split_task_gets_one_more_label_from_the_worker(make_project, labeler_in, default_queue_worker):
    from tests.conftest import add_tasks

    project = make_project(overlap=2, target_agreement=0.75, max_labels_per_task=3)
    (task,) = add_tasks(project, prompts=1)
    _label(project, labeler_in, "tie")
    _label(project, labeler_in, "both_bad")  # committed: the outbox sends the check to Redis
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and Task.objects.get(pk=task.pk).target_labels == 2:
        time.sleep(0.2)
    assert Task.objects.get(pk=task.pk).target_labels == 3, _logs([default_queue_worker])
    assert OutboxMessage.objects.count() == 0  # both sent and removed
    assert AuditEvent.objects.filter(action="task.extra_label", project=project, actor=None).count() == 1
    # the task is open again: a third labeler gets it
    assert _label(project, labeler_in, "tie") == task.pk
