"""Concurrency on PostgreSQL: real row locks, SELECT ... FOR UPDATE SKIP LOCKED, many threads.

Each thread has its own database connection (Django opens one per thread), so these are real
concurrent transactions, not interleavings simulated in one connection.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from annotate.models import Annotation, Task
from annotate.services.leasing import annotation_submit, task_claim_next
from tests.conftest import add_tasks

pytestmark = [
    pytest.mark.postgres(
        reason="needs PostgreSQL for real row locking (set DATABASE_URL); SQLite serialises writers instead"
    ),
    pytest.mark.django_db(transaction=True),
]


def _run_labelers(project, labelers, *, claims_each: int | None = None):
    """Each labeler claims and submits in its own thread until none is left (or ``claims_each``)."""
    barrier = threading.Barrier(len(labelers))
    log: list[tuple[int, int]] = []
    lock = threading.Lock()

    def work(user):
        try:
            barrier.wait()
            done = 0
            while claims_each is None or done < claims_each:
                lease = task_claim_next(project=project, labeler=user)
                if lease is None:
                    break
                annotation_submit(assignment_id=lease.pk, labeler=user, choice="left")
                with lock:
                    log.append((lease.task_id, user.pk))
                done += 1
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(labelers)) as pool:
        for f in [pool.submit(work, u) for u in labelers]:
            f.result()
    return log


@pytest.mark.parametrize("overlap", [1, 3])
def test_twenty_labelers_never_exceed_overlap_nor_repeat_a_task(make_project, labeler_in, overlap):
    project = make_project(overlap=overlap)
    tasks = add_tasks(project, prompts=40)
    labelers = [labeler_in(project) for _ in range(20)]
    log = _run_labelers(project, labelers)

    per_task = Counter(task_id for task_id, _ in log)
    assert len(log) == len(set(log)), "a labeler got the same task twice"
    assert max(per_task.values()) <= overlap
    assert len(per_task) == len(tasks) and all(n == overlap for n in per_task.values()), (
        "every slot is filled"
    )
    db_counts = Counter(Annotation.objects.values_list("task_id", flat=True))
    assert db_counts == per_task
    assert all(t.claims == overlap for t in Task.objects.filter(project=project))


def test_every_task_is_reached_before_any_gets_another_labeler(make_project, labeler_in):
    """60 claims over 40 tasks with overlap 3: breadth-first leaves every task with 1 or 2 labels."""
    project = make_project(overlap=3)
    add_tasks(project, prompts=40)
    labelers = [labeler_in(project) for _ in range(20)]
    log = _run_labelers(project, labelers, claims_each=3)
    assert len(log) == 60
    counts = Counter(task_id for task_id, _ in log)
    assert len(counts) == 40, "some task was never reached while others got a second labeler"
    assert set(counts.values()) <= {1, 2}


def test_concurrent_double_submit_writes_one_annotation(make_project, labeler_in):
    project = make_project()
    add_tasks(project, prompts=1)
    alice = labeler_in(project)
    lease = task_claim_next(project=project, labeler=alice)
    barrier = threading.Barrier(8)

    def submit(choice):
        try:
            barrier.wait()
            annotation, created = annotation_submit(assignment_id=lease.pk, labeler=alice, choice=choice)
            return annotation.pk, created, annotation.choice
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(submit, ["left", "right"] * 4))
    assert len({pk for pk, _, _ in results}) == 1
    assert sum(created for _, created, _ in results) == 1
    assert len({choice for _, _, choice in results}) == 1, "replays return the first result"
    assert Annotation.objects.count() == 1
