"""Races the one-statement claim must survive on PostgreSQL (real concurrent transactions)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from annotate.errors import Conflict
from annotate.models import Assignment, AssignmentState, Task
from annotate.services.leasing import task_claim_next
from tests.conftest import add_tasks

pytestmark = [
    pytest.mark.postgres(reason="needs PostgreSQL for real row locking (set DATABASE_URL)"),
    pytest.mark.django_db(transaction=True),
]


def test_one_labelers_parallel_claims_never_share_a_task_nor_fail(make_project, labeler_in):
    """Several tabs of one labeler asking at once: distinct tasks, claims that add up, and at worst
    a 409 asking to try again (never a database error)."""
    project = make_project(overlap=2)
    add_tasks(project, prompts=20)
    alice = labeler_in(project)
    barrier = threading.Barrier(8)

    def claim(i):
        try:
            barrier.wait()
            lease = task_claim_next(project=project, labeler=alice, exclude_assignment_ids=[0])
            return lease.task_id if lease else None
        except Conflict:
            return "conflict"
        finally:
            connections.close_all()

    for _ in range(3):
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(claim, range(8)))
    live = list(
        Assignment.objects.filter(labeler=alice, state=AssignmentState.LIVE).values_list("task_id", flat=True)
    )
    assert len(live) == len(set(live)), "one labeler never holds two leases on a task"
    assert sum(Task.objects.filter(project=project).values_list("claims", flat=True)) == len(live)
